# Sourced by the scripts/*.sh that run train.py / test.py: use the repository's virtual environment
# (.venv, created by the README's set-up) when it exists, without activating it: its bin/ goes first on
# PATH, so `python` and `torchrun` are the ones the requirements were installed into. Without .venv the
# PATH is left as it is (an activated environment, conda, a system install). PYTHON / TORCHRUN still
# override the commands.
_repo_venv_bin="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/.venv/bin"
if [ -d "$_repo_venv_bin" ]; then
  export PATH="$_repo_venv_bin:$PATH"
fi
unset _repo_venv_bin

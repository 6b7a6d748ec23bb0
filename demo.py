"""Paint a label map, get a picture: a local web page for any trained semantic-synthesis run.

    python demo.py                          # the main job's run (python train.py); offers to train it
    python demo.py --name NAME [--which_epoch latest] [--use_ema] [--port 7860] [--host 127.0.0.1]

Reads the run's options from ``<checkpoints_dir>/<name>/opt.json`` (as test.py does; flags given
override them), loads the networks the model uses for inference once, in eval mode, on the device of
``--gpu_ids``, and serves the page at http://127.0.0.1:7860/ until Ctrl+C. The page paints in the
dataset's palette (brush, fill, eraser, undo), starts from a blank canvas, a val label map or an
uploaded label PNG, and shows what the model makes of it (util/demo/). Only this machine can reach
the page unless ``--host`` says otherwise.
"""
import logging
import os
import subprocess
import sys

import torch

import data
import models
from options.base_options import _explicit_flags
from options.demo_options import DemoOptions
from util.cpu import apply_cpu_settings
from util.demo.engine import DemoEngine
from util.demo.server import DemoServer, is_loopback
from util.errors import MissingFileError, UserError, run_cli
from util.inference import check_checkpoint, load_inference_model
from util.preflight import check_model_files

logger = logging.getLogger("demo")

# Flags of demo.py that also choose the main job's training run.
TRAIN_FLAGS = ("model", "netG", "netD", "checkpoints_dir", "gpu_ids", "cpu_threads")


def parse(argv):
    options = DemoOptions()
    opt = options.parse(argv)
    model_cls = models.find_model_using_name(opt.model)
    if not model_cls.label_input:
        raise UserError(f"--model {opt.model} translates photos; demo.py paints label maps for the semantic "
                        f"models ({', '.join(m for m in models.known_models() if models.find_model_using_name(m).label_input)})")
    return options, opt


def main_job_command(argv):
    """train.py's command line for the main job of these demo flags."""
    command = [sys.executable, os.path.join(os.path.dirname(os.path.abspath(__file__)), "train.py")]
    tokens = list(argv)
    for i, token in enumerate(tokens):
        name = token[2:].split("=", 1)[0] if token.startswith("--") else None
        if name in TRAIN_FLAGS:
            command.append(token)
            if "=" not in token and i + 1 < len(tokens):
                command.append(tokens[i + 1])
    return command


def ensure_run(argv, opt):
    """The run's weights exist, or -- for the main job's run only -- are made now by train.py (asked
    first on a terminal; without one only with --train_main_job). Returns True when it trained."""
    try:
        check_checkpoint(opt)
        return False
    except MissingFileError:
        folder = os.path.join(opt.checkpoints_dir, opt.name)
        # Only a main-job run that does not exist yet is trained here (an existing run lacking the asked
        # epoch is the user's to sort out: train.py would refuse to overwrite it).
        main_job = ("name" not in set(_explicit_flags(argv)) and not os.path.isdir(folder)
                    and opt.dataset_mode == models.find_model_using_name(opt.model).default_dataset_mode)
        if not main_job:
            raise
        command = main_job_command(argv)
        shown = "python " + " ".join(command[1:]).replace(os.path.dirname(command[1]) + os.sep, "")
        if not opt.train_main_job:
            if not sys.stdin.isatty():
                again = " ".join(["python demo.py"] + list(argv) + ["--train_main_job"])
                raise MissingFileError(f"no trained run of the main job in {folder}; train it first with "
                                       f"`{shown}` (a few minutes on a CPU), or run `{again}`") from None
            answer = input(f"No trained run in {folder}. Train the main job now with `{shown}` (a few "
                           f"minutes on a CPU)? [Y/n] ").strip().lower()
            if answer not in ("", "y", "yes"):
                raise MissingFileError(f"no trained run in {folder}: nothing to show") from None
    print(f"training the main job first: {shown}", flush=True)
    status = subprocess.call(command)  # its progress bars and score go to this terminal
    if status != 0:
        raise UserError(f"the main job's training ended with status {status}; see its messages above")
    return True


def val_split(opt):
    """The dataset of the run's test split for the picker, or (None, why not)."""
    try:
        return data.create_dataset(opt), None
    except (UserError, OSError, ValueError) as err:
        return None, f"no val label maps to start from ({err})"


def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    options, opt = parse(argv)
    if ensure_run(argv, opt):
        options, opt = parse(argv)  # now with the run's saved options
        check_checkpoint(opt)
    check_model_files(opt)
    logging.basicConfig(level=logging.DEBUG if opt.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        server = DemoServer(None, opt.host, opt.port)  # the port is taken before the model is loaded
    except OSError as err:
        raise UserError(f"--host {opt.host} --port {opt.port}: cannot listen there ({err.strerror or err}); "
                        f"pick another port with --port") from None
    try:
        if options.option_file_read:
            logger.info("options of the run from %s", options.option_file_read)
        torch.manual_seed(opt.seed)
        apply_cpu_settings(opt)
        model, loaded = load_inference_model(opt)
        val, val_note = val_split(opt)
        server.engine = DemoEngine(opt, model, loaded, val, val_note)
        if not is_loopback(opt.host):
            print(f"WARNING: --host {opt.host}: the demo is reachable from other machines; it has no "
                  f"authentication and runs the model for anyone who can reach this port", file=sys.stderr)
        print(f"demo of run {opt.name} ({opt.model}, {opt.dataset_mode}, epoch {opt.which_epoch}) at {server.url} "
              f"(Ctrl+C stops it)", flush=True)
        server.serve_forever()
    except KeyboardInterrupt:
        print("demo stopped", flush=True)
    finally:
        server.server_close()
    return 0


def cli(argv=None):
    """Command-line entry: exit status 0, or 2 with the one-line message ``demo.py: error: ...``."""
    return run_cli("demo.py", main, argv)


if __name__ == "__main__":
    sys.exit(cli())

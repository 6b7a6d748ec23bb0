"""The commands documented in README.md and datasets/README.md work on a fresh machine (no weight
file in the torch hub cache) or say which file they need first."""
import os
import re
import shlex

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DOCS = ("README.md", os.path.join("datasets", "README.md"))
VGG19_FILE = "vgg19-dcbb9e9d.pth"


def read(doc):
    with open(os.path.join(ROOT, doc), encoding="utf-8") as f:
        return f.read()


def sections(text):
    """[(heading, text)] of the '## ' sections (with their sub-sections)."""
    parts = re.split(r"^(?=## )", text, flags=re.M)
    return [(p.splitlines()[0], p) for p in parts]


def code_commands(text):
    """[(comment lines just above, command)] of every fenced code block in ``text``, continuation
    lines joined."""
    found = []
    for block in re.findall(r"^```[a-z]*\n(.*?)^```", text, flags=re.S | re.M):
        comments, command = [], ""
        for line in block.splitlines():
            stripped = line.strip()
            if not stripped.startswith("#"):
                stripped = re.sub(r"\s+#.*$", "", stripped)  # a trailing comment
            if command:
                command += " " + stripped.rstrip("\\").strip()
                if not stripped.endswith("\\"):
                    found.append((comments, command))
                    comments, command = [], ""
            elif stripped.startswith("#"):
                comments.append(stripped)
            elif stripped.startswith(("python", "bash", "torchrun")) or " bash scripts/" in stripped:
                command = stripped.rstrip("\\").strip()
                if not stripped.endswith("\\"):
                    found.append((comments, command))
                    comments, command = [], ""
            else:
                comments = []
    return found


def weight_files_needed(command):
    """The pretrained-weight files an evaluate.py command line reads."""
    from util.metrics.fid import INCEPTION_WEIGHTS_FILE
    from util.metrics.perceptual import LPIPS_BACKBONE_FILES, RESNET50_FILE
    from util.metrics.segmenters import SEGMENTER_FILES

    args = shlex.split(command.replace("$R", "R"))
    value = {a: args[i + 1] for i, a in enumerate(args[:-1]) if a.startswith("--")}
    metrics = value.get("--metrics", "").split(",")
    files = []
    if "fid" in metrics or "kid" in metrics:
        files.append(INCEPTION_WEIGHTS_FILE)
    if "lpips" in metrics:
        files.append(LPIPS_BACKBONE_FILES[value.get("--lpips_net", "alex")])
    if "frd" in metrics:
        files.append(RESNET50_FILE)
    if value.get("--seg_model") in SEGMENTER_FILES:
        files.append(SEGMENTER_FILES[value["--seg_model"]])
    return files


def test_evaluate_commands_name_the_weight_files_they_need():
    commands = [(c, cmd) for c, cmd in code_commands(read("README.md")) if cmd.startswith("python evaluate.py")]
    assert len(commands) >= 6
    for comments, command in commands:
        needed = weight_files_needed(command)
        said = " ".join(comments)
        for name in needed:
            assert name in said, f"{command!r} needs {name}, its comment says: {said!r}"
        if "no weight" in said:
            assert needed == [], f"{command!r} is said to need no weight file but reads {needed}"


def test_training_commands_say_they_need_the_vgg_weights():
    """Every documented training command with the VGG loss on sits in a section that names the file."""
    checked = 0
    for doc in DOCS:
        for heading, text in sections(read(doc)):
            for _, command in code_commands(text):
                trains = "train.py" in command or "scripts/train_" in command
                if not trains or "--dry_run" in command or "--no_vgg_loss" in command:
                    continue
                if ("--model oasis" in command or "train_oasis_" in command) and "--add_vgg_loss" not in command:
                    continue  # OASIS trains without the VGG loss unless --add_vgg_loss
                if "--model attention_gan" in command or "train_attentiongan_" in command:
                    continue  # AttentionGAN has no VGG loss
                if re.search(r"(^|\s)(\.venv/bin/)?python3? train\.py$", command) or "&& .venv/bin/python train.py" in command:
                    continue  # the main job: synthetic preset, no VGG loss
                checked += 1
                assert VGG19_FILE in text, f"{doc} {heading!r}: {command!r} needs {VGG19_FILE}, not said"
    assert checked >= 6


def test_the_cpu_custom_command_needs_no_weight_file(tmp_torch_home, tmp_path):
    """The custom example for a CPU builds its model with an empty hub cache, and its documented
    checkpoint size is the estimate's."""
    import models
    from options.train_options import TrainOptions
    from util import checkpoint as ckpt

    text = read(os.path.join("datasets", "README.md"))
    commands = [cmd for _, cmd in code_commands(text) if "--dataset_mode custom" in cmd and "--no_vgg_loss" in cmd]
    assert len(commands) == 1
    argv = shlex.split(commands[0])[2:]
    argv = [{"L": "labels", "I": "images", "K": "5"}.get(a, a) for a in argv]
    opt = TrainOptions().parse(argv + ["--gpu_ids", "-1", "--checkpoints_dir", str(tmp_path)])
    assert opt.no_vgg_loss
    est = ckpt.checkpoint_size_estimate(models.create_model(opt), opt)  # no file needed
    documented = re.search(r"(\d+) MB of checkpoints", text)
    assert est["total"] / 2**20 == pytest.approx(float(documented.group(1)), rel=0.05)

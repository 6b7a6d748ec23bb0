"""Cheap checks of a command's inputs, before any dataset or network is built.

``train.py`` and ``test.py`` check, right after the options and in this order: the data folders
(here), the run folder or checkpoint, the pretrained-weight files (here, through the model), so the
first problem a newcomer meets is reported first, in one line, without waiting for a network to be
built (util.errors: user errors). The files inside the folders are checked when the dataset is built.
"""
import os

from util.errors import MissingFileError


def check_data_folders(opt):
    """MissingFileError naming the flag and the folder when a folder the dataset reads does not exist
    (``input_folders`` of the dataset class: ``--dataroot``, or ``--label_dir`` / ``--image_dir`` of
    the custom mode; none for the generated synthetic data)."""
    import data

    dataset = data.find_dataset_using_name(opt.dataset_mode)
    for flag, folder in dataset.input_folders(opt):
        if not os.path.isdir(folder):
            raise MissingFileError(
                f"{flag} {folder}: no such folder (--dataset_mode {opt.dataset_mode} reads its data "
                f"from it; datasets/README.md says how to prepare each dataset)")


def check_model_files(opt):
    """MissingFileError when a pretrained-weight file the model needs with these options is missing
    (``check_files`` of the model class, e.g. the VGG19 of the perceptual loss when training)."""
    import models

    models.find_model_using_name(opt.model).check_files(opt)

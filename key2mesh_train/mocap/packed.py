"""A pose bank packed into one file, for training where the MoCap is not.

A GPU machine rented for an hour (or one without ``../shared``) should not need the BVH files,
the retargeter or its cache: ``key2mesh-train pack-mocap`` writes every frame that training
would read (after retargeting and the config's ``frame_stride``), with sequence names, so the
train / held-out split by performer and the data digest stay the same. Give the file as a
MoCap root (``data.mocap``) there. Rotations are stored as fp16 axis-angle (within 0.06
degrees): the frames of all 206 CMU files in ``../shared`` take about 11 MB.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import torch

from key2mesh.rotations import axis_angle_to_matrix, matrix_to_axis_angle
from key2mesh_train.atomic_npz import write_npz
from key2mesh_train.mocap.dataset import PoseBank

FORMAT_KEY = "key2mesh_pose_bank"
VERSION = 1


def is_packed_bank(path: str | os.PathLike) -> bool:
    """A file :func:`write_packed_bank` wrote (an AMASS ``.npz`` is not one)."""
    path = Path(path)
    if not (path.is_file() and path.suffix.lower() == ".npz"):
        return False
    try:
        with np.load(path) as data:
            return FORMAT_KEY in data.files
    except (OSError, ValueError):
        return False


def write_packed_bank(bank: PoseBank, path: str | os.PathLike) -> Path:
    """Write ``bank`` to ``path`` (``.npz``) atomically: an interrupted write leaves no file."""
    path = Path(path)
    if path.suffix.lower() != ".npz":
        raise ValueError(f"{path}: a packed pose bank is an .npz file")
    return write_npz(path, **{FORMAT_KEY: np.array(VERSION)},
                     axis_angle=matrix_to_axis_angle(bank.rotmats).numpy().astype(np.float16),
                     betas=bank.betas.numpy().astype(np.float16), sequence_ids=bank.sequence_ids.astype(np.int32),
                     names=np.array(json.dumps(bank.names)))


def read_packed_bank(path: str | os.PathLike) -> PoseBank:
    """The bank in ``path``: rotations ``[N,24,3,3]`` (root in a Y-up world), betas ``[N,10]``."""
    path = Path(path)
    with np.load(path) as data:
        if FORMAT_KEY not in data.files:
            raise ValueError(f"{path}: not a packed pose bank (write one with 'key2mesh-train pack-mocap')")
        if int(data[FORMAT_KEY]) != VERSION:
            raise ValueError(f"{path}: pose bank format {int(data[FORMAT_KEY])}, this version reads {VERSION}")
        rotmats = axis_angle_to_matrix(torch.from_numpy(data["axis_angle"].astype(np.float32)))
        betas = torch.from_numpy(data["betas"].astype(np.float32))
        ids = data["sequence_ids"].astype(np.int64)
        names = json.loads(str(data["names"]))
    if not (len(rotmats) == len(betas) == len(ids)) or (len(ids) and ids.max() >= len(names)):
        raise ValueError(f"{path}: a damaged pose bank (arrays of different lengths)")
    return PoseBank(rotmats, betas, ids, names)

"""Collect MoCap frames (AMASS ``.npz`` and CMU ``.bvh``) into pose/shape tensors."""

from __future__ import annotations

import logging
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from key2mesh.rotations import axis_angle_to_matrix
from key2mesh_train.mocap.amass import load_amass_npz
from key2mesh_train.mocap.retarget import load_bvh_cached
from key2mesh_train.mocap.sequence import TARGET_FPS, Z_UP_TO_Y_UP, MotionSequence

log = logging.getLogger(__name__)


@dataclass
class PoseBank:
    """Frames ready for synthesis: Y-up world rotations and betas."""

    rotmats: torch.Tensor  # [N, 24, 3, 3], root in a Y-up world
    betas: torch.Tensor  # [N, 10]
    sequence_ids: np.ndarray  # [N] index into names
    names: list[str]

    def __len__(self) -> int:
        return self.rotmats.shape[0]

    def subjects(self) -> set[str]:
        return {subject_of(self.names[i]) for i in set(self.sequence_ids.tolist())}

    def subset(self, mask: np.ndarray) -> PoseBank:
        index = torch.from_numpy(np.flatnonzero(mask))
        return PoseBank(self.rotmats[index], self.betas[index], self.sequence_ids[mask], self.names)

    def split(self, held_out_fraction: float = 0.2, held_out_subjects: list[str] | None = None) -> tuple[PoseBank, PoseBank]:
        """Split by whole subject (never by file or frame), so the held-out number says how
        the model does on a person it never saw. ``held_out_subjects`` names them; otherwise
        a stable hash of each subject id picks about ``held_out_fraction`` of them."""
        subjects = [subject_of(n) for n in self.names]
        if held_out_subjects:
            wanted = {str(s) for s in held_out_subjects}
            held = np.array([s in wanted for s in subjects])
        else:
            held = np.array([zlib.crc32(s.encode()) % 1000 < held_out_fraction * 1000 for s in subjects])
        if held.all() or not held.any():  # tiny sets: hold out the last subject
            held = np.array([s == subjects[-1] for s in subjects])
        if held.all():  # one subject only: hold out its last sequence
            held = np.zeros(len(self.names), bool)
            held[-1] = True
        mask = held[self.sequence_ids]
        return self.subset(~mask), self.subset(mask)


def subject_of(name: str) -> str:
    """The performer of a sequence named by its path below the MoCap root: the folder that holds
    it (CMU ``mb/05/05_02.bvh`` and AMASS ``CMU/05/05_02_poses.npz`` -> ``05``), else the part of
    the file name before its first underscore (``05_02.bvh`` -> ``05``)."""
    parts = name.split("/")
    if len(parts) > 1:
        return parts[-2]
    return parts[-1].split("_")[0].split(".")[0]


def find_motion_files(roots: list[str | Path]) -> list[Path]:
    files: list[Path] = []
    for root in roots:
        root = Path(root)
        if root.is_file():
            files.append(root)
        elif root.is_dir():
            files.extend(sorted(p for p in root.rglob("*") if p.suffix.lower() in (".npz", ".bvh")))
    return files


def sequence_name(path: Path, roots: list[str | Path]) -> str:
    """A sequence's name, which the train/held-out split hashes: its path below the MoCap root
    it was found under, so the split is the same wherever (and however absolutely) the data lives."""
    for root in map(Path, roots):
        if path != root and path.is_relative_to(root):  # a root that is itself a file: its name
            return path.relative_to(root).as_posix()
    return path.name


def load_sequences(files: list[Path], roots: list[str | Path], rest_joints: np.ndarray, cache_dir: Path,
                   progress: bool = True) -> list[MotionSequence]:
    """Load ``files`` (found under ``roots`` by :func:`find_motion_files`), resampled.

    A file that cannot be read or retargeted is logged with its reason and skipped: one bad
    file must not end a long pre-training run. Only when nothing loads is it an error.
    """
    sequences, skipped = [], []
    for path in tqdm(files, desc="loading MoCap", unit="file", disable=not progress):
        try:
            if path.suffix.lower() == ".bvh":
                seq = load_bvh_cached(path, rest_joints, cache_dir)
            else:
                seq = load_amass_npz(path)
        except (ValueError, OSError) as err:  # BVHError, UnknownRigError and bad .npz are ValueErrors
            log.warning("skipping %s: %s", path, err)
            skipped.append(path)
            continue
        seq.name = sequence_name(path, roots)
        sequences.append(seq.resampled(TARGET_FPS))
    if skipped:
        log.warning("MoCap: %d of %d files skipped (reasons above), %d loaded", len(skipped), len(files), len(sequences))
    if files and not sequences:
        raise ValueError(f"none of the {len(files)} MoCap files could be loaded (first: {files[0]}); see the log")
    return sequences


def build_pose_bank(sequences: list[MotionSequence], frame_stride: int = 1) -> PoseBank:
    if not sequences:
        raise ValueError("no MoCap sequences to build a pose bank from")
    rots, betas, ids = [], [], []
    z_to_y = torch.from_numpy(Z_UP_TO_Y_UP).float()
    for i, seq in enumerate(sequences):
        poses = torch.from_numpy(seq.poses[::frame_stride]).float()
        mats = axis_angle_to_matrix(poses)
        mats[:, 0] = z_to_y @ mats[:, 0]
        rots.append(mats)
        betas.append(torch.from_numpy(np.tile(seq.betas, (mats.shape[0], 1))).float())
        ids.append(np.full(mats.shape[0], i))
    return PoseBank(torch.cat(rots), torch.cat(betas), np.concatenate(ids), [s.name for s in sequences])


def concat_banks(banks: list[PoseBank]) -> PoseBank:
    if len(banks) == 1:
        return banks[0]
    names: list[str] = []
    ids = []
    for bank in banks:
        ids.append(bank.sequence_ids + len(names))
        names += bank.names
    return PoseBank(torch.cat([b.rotmats for b in banks]), torch.cat([b.betas for b in banks]), np.concatenate(ids),
                    names)


def load_pose_bank(roots: list[str], cache_dir: str | Path, rest_joints: np.ndarray,
                   procedural_sequences: int = 60, frame_stride: int = 1, progress: bool = True) -> PoseBank:
    """MoCap from ``roots``; if none is found, procedural stand-in motion (logged loudly).

    A root may be a packed pose bank (``key2mesh-train pack-mocap``): its frames are taken as
    they are (already retargeted and strided)."""
    from key2mesh_train.mocap.packed import is_packed_bank, read_packed_bank
    from key2mesh_train.mocap.procedural import write_procedural_dataset

    packed = [root for root in roots if is_packed_bank(root)]
    banks = [read_packed_bank(root) for root in packed]
    roots = [root for root in roots if root not in packed]
    files = find_motion_files(roots)
    cache_dir = Path(cache_dir)
    if not files and not banks:
        log.warning("no MoCap found under %s: using %d procedural stand-in sequences", roots, procedural_sequences)
        roots = [cache_dir / f"procedural-{procedural_sequences}"]
        files = find_motion_files(roots)
        if len(files) != procedural_sequences:
            files = write_procedural_dataset(roots[0], sequences=procedural_sequences)
    if files:
        sequences = load_sequences(files, roots, rest_joints, cache_dir / "bvh", progress=progress)
        banks.append(build_pose_bank(sequences, frame_stride=frame_stride))
    return concat_banks(banks)

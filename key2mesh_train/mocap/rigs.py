"""BVH rigs that users actually have, told apart by their joint names.

Each rig maps the places the retargeter needs (SMPL joints, the spine chain between pelvis
and neck, the head's top) to the BVH joints that sit there. A name ending in ``.end`` is that
joint's End Site. Several candidates may be given: the first present one wins. Matching
ignores case and a namespace prefix (``mixamorig:Hips`` is ``Hips``), since exporters differ
in both. Joints that sit on their parent (zero-length bones, common in CMU conversions) are
fine as long as no bone the retargeter measures starts and ends on the same point; the spine
chain drops them (see ``retarget.py``).
"""

from __future__ import annotations

from dataclasses import dataclass


def normalise_joint_name(name: str) -> str:
    return name.rsplit(":", 1)[-1].lower()


@dataclass(frozen=True)
class Rig:
    name: str
    description: str
    # Place -> candidate BVH joint names; places: SMPL joints (but spine1-3), "spine" (a chain,
    # every present name is used, in order) and "head_top" (optional).
    places: dict[str, tuple[str, ...]]
    # Names that must all be present for this rig to be picked (beyond its required places).
    signature: tuple[str, ...] = ()


def _sided(left: dict[str, tuple[str, ...]]) -> dict[str, tuple[str, ...]]:
    """Left-side places -> both sides, by the rig's own left/right spelling."""
    out = dict(left)
    swaps = [("Left", "Right"), ("left", "right"), ("_L_", "_R_")]
    for place, names in left.items():
        right_names = []
        for name in names:
            base, dot, end = name.partition(".")
            for a, b in swaps:
                if a in base:
                    base = base.replace(a, b)
                    break
            else:  # one-letter prefixes: lThigh, lfemur, LThumb
                base = ("r" if base[0] == "l" else "R") + base[1:]
            right_names.append(base + dot + end)
        out[place.replace("left_", "right_")] = tuple(right_names)
    return out


# SMPL's neck joint sits about 10 cm above the shoulder joints: where a rig has a zero-length
# lower neck on the upper spine (CMU's mb, asf, max), the neck is the joint above it.

# Places every rig must provide: without these there is no body to retarget.
REQUIRED_PLACES = (
    "pelvis", "left_hip", "right_hip", "left_knee", "right_knee", "left_ankle", "right_ankle",
    "neck", "head", "left_shoulder", "right_shoulder", "left_elbow", "right_elbow", "left_wrist", "right_wrist",
)

RIGS: tuple[Rig, ...] = (
    Rig("cmu-motionbuilder", "CMU BVH, Motionbuilder-friendly release (Hips, LHipJoint, LeftUpLeg, LowerBack, ...)", {
        "pelvis": ("Hips",), "spine": ("LowerBack", "Spine", "Spine1"), "neck": ("Neck1", "Neck"), "head": ("Head",),
        "head_top": ("Head.end",),
        **_sided({"left_hip": ("LeftUpLeg",), "left_knee": ("LeftLeg",), "left_ankle": ("LeftFoot",),
                  "left_foot": ("LeftToeBase", "LeftToeBase.end"), "left_collar": ("LeftShoulder",),
                  "left_shoulder": ("LeftArm",), "left_elbow": ("LeftForeArm",), "left_wrist": ("LeftHand",),
                  "left_hand": ("LeftHandIndex1", "LeftFingerBase.end")}),
    }, signature=("LHipJoint", "LowerBack")),
    Rig("cmu-daz", "CMU BVH, Daz/Poser-friendly release (hip, abdomen, chest, lThigh, lShin, lShldr, ...)", {
        "pelvis": ("hip",), "spine": ("abdomen", "chest"), "neck": ("neck",), "head": ("head",),
        "head_top": ("head.end",),
        **_sided({"left_hip": ("lThigh",), "left_knee": ("lShin",), "left_ankle": ("lFoot",),
                  "left_foot": ("lToe", "lFoot.end"), "left_collar": ("lCollar",), "left_shoulder": ("lShldr",),
                  "left_elbow": ("lForeArm",), "left_wrist": ("lHand",), "left_hand": ("lMid1", "lHand.end")}),
    }),
    Rig("cmu-asf", "BVH with CMU's ASF bone names (hip, lfemur, ltibia, lhumerus, lradius, ...)", {
        "pelvis": ("hip", "root"), "spine": ("lowerback", "upperback", "thorax"), "neck": ("upperneck", "lowerneck"),
        "head": ("head",), "head_top": ("head.end",),
        **_sided({"left_hip": ("lfemur",), "left_knee": ("ltibia",), "left_ankle": ("lfoot",),
                  "left_foot": ("ltoes", "lfoot.end"), "left_collar": ("lclavicle",), "left_shoulder": ("lhumerus",),
                  "left_elbow": ("lradius",), "left_wrist": ("lwrist",), "left_hand": ("lfingers", "lhand.end")}),
    }),
    Rig("cmu-3dsmax", "CMU BVH, 3ds Max-friendly release (Hips, LeftHip, LeftKnee, LeftCollar, LeftShoulder = upper arm, ...)", {
        "pelvis": ("Hips",), "spine": ("lowerback", "Chest", "Chest2"), "neck": ("Neck", "lowerneck"),
        "head": ("Head",), "head_top": ("Head.end",),
        **_sided({"left_hip": ("LeftHip",), "left_knee": ("LeftKnee",), "left_ankle": ("LeftAnkle",),
                  "left_foot": ("LeftToe", "LeftAnkle.end"), "left_collar": ("LeftCollar",),
                  "left_shoulder": ("LeftShoulder",), "left_elbow": ("LeftElbow",), "left_wrist": ("LeftWrist",),
                  "left_hand": ("LFingers", "lhand")}),
    }),
    Rig("character-creator", "Reallusion Character Creator / iClone (CC_Base_Hip, CC_Base_L_Thigh, ...)", {
        "pelvis": ("CC_Base_Hip",), "spine": ("CC_Base_Waist", "CC_Base_Spine01", "CC_Base_Spine02"),
        "neck": ("CC_Base_NeckTwist01",), "head": ("CC_Base_Head",), "head_top": ("CC_Base_Head.end",),
        **_sided({"left_hip": ("CC_Base_L_Thigh",), "left_knee": ("CC_Base_L_Calf",), "left_ankle": ("CC_Base_L_Foot",),
                  "left_foot": ("CC_Base_L_ToeBase",), "left_collar": ("CC_Base_L_Clavicle",),
                  "left_shoulder": ("CC_Base_L_Upperarm",), "left_elbow": ("CC_Base_L_Forearm",),
                  "left_wrist": ("CC_Base_L_Hand",), "left_hand": ("CC_Base_L_Mid1",)}),
    }),
    # Mixamo and most game/DCC exports: Hips/Spine/Spine1/Spine2/Neck/Head, LeftUpLeg/LeftLeg/
    # LeftFoot, LeftShoulder (collar)/LeftArm/LeftForeArm/LeftHand; ``mixamorig:`` is stripped.
    Rig("generic", "Mixamo-style and generic naming (Hips, Spine, LeftUpLeg, LeftLeg, LeftArm, LeftForeArm, ...)", {
        "pelvis": ("Hips", "Pelvis"), "spine": ("Spine", "Spine1", "Spine2", "Spine3", "Chest", "UpperChest"),
        "neck": ("Neck",), "head": ("Head",), "head_top": ("HeadTop_End", "Head.end"),
        **_sided({"left_hip": ("LeftUpLeg",), "left_knee": ("LeftLeg",), "left_ankle": ("LeftFoot",),
                  "left_foot": ("LeftToeBase", "LeftToe", "LeftFoot.end"), "left_collar": ("LeftShoulder",),
                  "left_shoulder": ("LeftArm",), "left_elbow": ("LeftForeArm",), "left_wrist": ("LeftHand",),
                  "left_hand": ("LeftHandMiddle1", "LeftHandIndex1", "LeftHand.end")}),
    }),
)


class UnknownRigError(ValueError):
    """A BVH whose joint names match no supported rig."""


def resolve_rig(joint_names: list[str], has_end_site: set[str]) -> tuple[Rig, dict[str, list[str]]]:
    """Pick the first rig whose required places and signature are all present.

    Returns the rig and, per place, the matched BVH names (the spine: every present one;
    other places: the first present candidate). ``has_end_site`` names joints with an End Site.
    """
    by_key = {normalise_joint_name(n): n for n in joint_names}
    ends = {normalise_joint_name(n) for n in has_end_site}

    def lookup(candidate: str) -> str | None:
        base, _, end = candidate.partition(".")
        key = normalise_joint_name(base)
        if key not in by_key or (end and key not in ends):
            return None
        return by_key[key] + (".end" if end else "")

    lacking: dict[str, list[str]] = {}
    for rig in RIGS:
        matched: dict[str, list[str]] = {}
        for place, candidates in rig.places.items():
            found = [m for m in map(lookup, candidates) if m is not None]
            if found:
                matched[place] = found if place == "spine" else found[:1]
        missing = [rig.places[p][0] for p in REQUIRED_PLACES if p not in matched]
        missing += [s for s in rig.signature if lookup(s) is None]
        if not missing:
            return rig, matched
        lacking[rig.name] = missing
    closest = min(lacking, key=lambda name: len(lacking[name]))
    raise UnknownRigError(
        f"unknown BVH rig: closest is {closest}, which lacks joints {lacking[closest]}; "
        f"supported rigs: {', '.join(r.name for r in RIGS)} (see key2mesh_train/mocap/rigs.py)")

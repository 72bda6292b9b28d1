"""Shared helpers of the main job's stages.

Each stage (one module of `eval/stages/`, registered in `eval.reproduce.STAGES`)
takes its config section and a stage directory and returns a JSON-able dict
with `markdown` (its part of the report), `figures` (PNG names inside the
stage directory) and its results.
"""

from __future__ import annotations

import copy
import os


def resolve_backbone(path: str, stage_dir: str) -> str:
    """An absolute `path` as is; a relative one under the main-job workdir
    (the stage directory's parent), where the `backbones` stage trains."""
    if os.path.isabs(path):
        return path
    return os.path.join(os.path.dirname(os.path.abspath(stage_dir)), path)


def with_backbone(config, stage_dir: str):
    """A copy of a study config whose `backbone` is resolved for this job."""
    config = copy.deepcopy(config)
    config.backbone = resolve_backbone(config.backbone, stage_dir)
    return config

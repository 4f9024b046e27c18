"""Run by the LeRobot virtualenv's python (`make conformance`): load a LeRobot folder with LeRobot itself.

    python lerobot_load.py ROOT RESULT.json [--convert-v21]

With --convert-v21 the v2.1 folder is first converted in place by LeRobot's own converter
(lerobot.datasets.v30.convert_dataset_v21_to_v30, offline: no hub push). Writes what
`LeRobotDataset(repo_id, root=ROOT)` returns for every frame (camera tensors as their shapes).
Videos are decoded by LeRobot's PyAV backend: its default, torchcodec, needs FFmpeg's shared
libraries on the system, which a bare machine lacks.
"""

import json
import sys
from pathlib import Path

from lerobot.datasets.lerobot_dataset import LeRobotDataset


def main() -> None:
    root, result = Path(sys.argv[1]), Path(sys.argv[2])
    if "--convert-v21" in sys.argv:
        from lerobot.datasets.v30.convert_dataset_v21_to_v30 import convert_dataset

        convert_dataset(repo_id=root.name, root=root.parent, push_to_hub=False)
    dataset = LeRobotDataset(f"local/{root.name}", root=root, video_backend="pyav")
    frames = []
    for i in range(len(dataset)):
        item = dataset[i]
        frames.append({key: (list(value.shape) if key.startswith("observation.images.") else
                             value.tolist() if hasattr(value, "tolist") else value) for key, value in item.items()})
    meta = dataset.meta
    result.write_text(json.dumps({"codebase_version": meta.info["codebase_version"], "fps": dataset.fps,
                                  "num_episodes": dataset.num_episodes, "features": sorted(meta.features),
                                  "frames": frames}))


if __name__ == "__main__":
    main()

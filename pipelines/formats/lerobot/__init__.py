"""LeRobot dataset layouts: write (v2.1, v3.0) and validate (v2.1). The reader is pipelines.readers.lerobot."""

from pipelines.lerobot.validate import validate_lerobot_v21
from pipelines.lerobot.writer import LeRobotEpisode, write_lerobot_v21, write_lerobot_v30

__all__ = ["LeRobotEpisode", "validate_lerobot_v21", "write_lerobot_v21", "write_lerobot_v30"]

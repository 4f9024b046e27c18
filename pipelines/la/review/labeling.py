"""The Label Studio labeling interface for LA segment verification (la4vla.txt Appendix 7.6).

One task = one candidate segment. The verifier watches the clip(s) (or, for a source
without cameras, reads the segment's state plot), rates quality
0–3 and confidence 0–2 (the paper's Tables 9 and 10, shown as hints), and may
correct the prefilled subaction, instruction and boundaries. Predictions prefill
those four controls, so an untouched value means "the proposal was right".
"""

from __future__ import annotations

from collections.abc import Sequence
from xml.sax.saxutils import quoteattr

# Control names: the labeling config, the predictions and the pull side share them.
QUALITY = "quality"
CONFIDENCE = "confidence"
SUBACTION = "subaction"
INSTRUCTION = "instruction"
START = "start"
END = "end"
EDITABLE_CONTROLS = (SUBACTION, INSTRUCTION, START, END)

# Task data key of the clip of camera `name` (the config's $variable).
VIDEO_KEY = "video_{camera}"
# A source without cameras has no clips: its tasks show a state plot, as <Image name=STATE_PLOT value=$STATE_PLOT>.
STATE_PLOT = "state_plot"
NO_CAMERAS_NOTE = "This source has no cameras, so there is no clip: judge the segment from its state plot."

# la4vla.txt Table 9 (quality) and Table 10 (confidence): score → (level, interpretation).
QUALITY_SCALE: dict[int, tuple[str, str]] = {
    0: ("Unusable", "The segment is severely misaligned or does not contain a meaningful atomic action."),
    1: ("Low quality", "Relevant motion, but the boundary, label, or instruction is too noisy for reliable training."),
    2: ("Acceptable", "Mostly correct and useful for training with minor imperfections."),
    3: ("High quality", "The segment, subaction label, and instruction are well aligned."),
}
CONFIDENCE_SCALE: dict[int, tuple[str, str]] = {
    0: ("Low", "The segment is ambiguous or difficult to assess."),
    1: ("Medium", "You can assess the segment but some uncertainty remains."),
    2: ("High", "You are confident in the quality judgment."),
}


def video_key(camera: str) -> str:
    return VIDEO_KEY.format(camera=camera)


def media_key(name: str) -> str:
    """Task data key of a task's media object: the state plot, or the clip of camera `name`."""
    return STATE_PLOT if name == STATE_PLOT else video_key(name)


def _score_choices(name: str, to_name: str, scale: dict[int, tuple[str, str]]) -> str:
    # The alias (the bare score) is what lands in the annotation result; the label is what people read.
    choices = "\n".join(
        f"    <Choice value={quoteattr(f'{score} · {level}')} alias={quoteattr(str(score))} hint={quoteattr(hint)}/>"
        for score, (level, hint) in scale.items()
    )
    return (
        f'  <Choices name="{name}" toName="{to_name}" choice="single-radio" required="true" showInline="true">\n'
        f"{choices}\n  </Choices>"
    )


def labeling_config(cameras: Sequence[str], vocabulary: Sequence[str]) -> str:
    """Label Studio XML for segment verification with one <Video> per camera (first = main view).

    Without cameras the main (and only) object is an <Image> of the segment's state plot.
    """
    if not vocabulary:
        raise ValueError("labeling_config needs a non-empty subaction vocabulary")
    if cameras:
        main = cameras[0]
        media = "\n".join(
            f'  <Header value="{camera}" size="6"/>\n  <Video name="{camera}" value="${video_key(camera)}" height="240"/>'
            for camera in cameras
        )
    else:  # nothing to watch: the controls point at the state plot
        main = STATE_PLOT
        media = f'  <Header value={quoteattr(NO_CAMERAS_NOTE)} size="5"/>\n  <Image name="{main}" value="${main}"/>'
    subactions = "\n".join(f"    <Choice value={quoteattr(v)}/>" for v in vocabulary)
    return f"""<View>
  <Header value="$task"/>
  <Text name="summary" value="$summary"/>
{media}
  <Header value="Quality: is the segment usable for training? (boundary, label and instruction)" size="5"/>
{_score_choices(QUALITY, main, QUALITY_SCALE)}
  <Header value="Confidence in your quality score" size="5"/>
{_score_choices(CONFIDENCE, main, CONFIDENCE_SCALE)}
  <Header value="Corrections (prefilled with the proposal; change only what is wrong)" size="5"/>
  <Choices name="{SUBACTION}" toName="{main}" choice="single" showInline="true">
{subactions}
  </Choices>
  <TextArea name="{INSTRUCTION}" toName="{main}" maxSubmissions="1" editable="true" rows="2" placeholder="atomic instruction"/>
  <Header value="Boundaries: first frame and the frame after the last, in source-episode frames (the clip shows start to end - 1)" size="6"/>
  <Number name="{START}" toName="{main}" min="0"/>
  <Number name="{END}" toName="{main}" min="1"/>
</View>
"""

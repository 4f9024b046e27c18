"""The Label Studio labeling interface for LA segment verification (la4vla.txt Appendix 7.6).

One task = one candidate segment. The verifier watches the clip(s) beside the episode's keyframe
plot (or, for a source without cameras, reads the segment's state plot), rates quality 0–3 and
confidence 0–2 (the paper's Tables 9 and 10, shown as hints), and may correct the prefilled
subaction, instruction and boundaries. Predictions prefill those four controls, so an untouched
value means "the proposal was right".

What the page must not get wrong (checked in a real browser, tests/browser/): the players run at the
clip's frame rate (Label Studio assumes 24 fps otherwise, and its frame counter lies); the boundaries
are in the frames that counter shows; the ratings sit beside the players, not below the fold; digit
N picks quality N, and z/x/c pick confidence 0/1/2.
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
# Beside the clips: the episode's keyframe plot, every segment numbered (<Image name=KEYFRAME_PLOT value=$KEYFRAME_PLOT>).
KEYFRAME_PLOT = "keyframe_plot"
CONFIDENCE_HOTKEYS = ("z", "x", "c")  # quality takes the digits 0-3, so a digit always means a quality score

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
    """Task data key of a task's media object: a plot, or the clip of camera `name`."""
    return name if name in (STATE_PLOT, KEYFRAME_PLOT) else video_key(name)


def _score_choices(name: str, to_name: str, scale: dict[int, tuple[str, str]], hotkeys: Sequence[str],
                   what: str) -> str:
    # The alias (the bare score) is what lands in the annotation result; the label is what people read
    # (Label Studio adds the hotkey). Its own warning for a missing required choice calls it a "Checkbox".
    choices = "\n".join(
        f"      <Choice value={quoteattr(f'{score} · {level}')} alias={quoteattr(str(score))} "
        f"hotkey={quoteattr(key)} hint={quoteattr(hint)}/>"
        for (score, (level, hint)), key in zip(scale.items(), hotkeys, strict=True)
    )
    return (
        f'    <Choices name="{name}" toName="{to_name}" choice="single-radio" required="true" '
        f'requiredMessage={quoteattr(f"Choose a {what} score before submitting.")} showInline="true">\n'
        f"{choices}\n    </Choices>"
    )


def _media(cameras: Sequence[str]) -> tuple[str, str]:
    """(main object name, the left column): the synchronised clips and the keyframe plot, or the state plot."""
    if not cameras:  # nothing to watch: the controls point at the state plot
        return STATE_PLOT, (f'    <Header value={quoteattr(NO_CAMERAS_NOTE)} size="5"/>\n'
                            f'    <Image name="{STATE_PLOT}" value="${STATE_PLOT}"/>')
    players = "\n".join(
        f'    <Header value="{camera}" size="6"/>\n'
        f'    <Video name="{camera}" value="${video_key(camera)}" frameRate="$fps" sync="clips" height="200"/>'
        for camera in cameras
    )
    plot = (f'    <Header value="Episode keyframes and segments (this one: $segment_label)" size="6"/>\n'
            f'    <Image name="{KEYFRAME_PLOT}" value="${KEYFRAME_PLOT}" maxWidth="100%"/>')
    return cameras[0], f"{players}\n{plot}"


def _boundaries_header(cameras: Sequence[str]) -> str:
    if cameras:
        return ("Boundaries in the player's frames (its counter): first and last frame of the segment; "
                "the orange-outlined frames are 1 s of context")
    return "Boundaries: first frame and the frame after the last, in source-episode frames (the plot's x axis)"


def labeling_config(cameras: Sequence[str], vocabulary: Sequence[str]) -> str:
    """Label Studio XML for segment verification with one <Video> per camera (first = main view), played in
    sync at the clip's frame rate, and the episode's keyframe plot.

    Without cameras the main (and only) object is an <Image> of the segment's state plot.
    """
    if not vocabulary:
        raise ValueError("labeling_config needs a non-empty subaction vocabulary")
    main, media = _media(cameras)
    subactions = "\n".join(f"      <Choice value={quoteattr(v)}/>" for v in vocabulary)
    first = 1 if cameras else 0  # the player counts from 1, source episodes from 0
    quality_keys = [str(score) for score in QUALITY_SCALE]
    # Two columns: what to judge on the left, the ratings beside it (not below the fold). The players'
    # control bars need about 560 px; the ratings column keeps its width and the page scrolls sideways.
    return f"""<View>
  <Header value="$task"/>
  <Text name="summary" value="$summary"/>
  <View style="display: flex; gap: 24px; align-items: flex-start; overflow-x: auto">
   <View style="flex: 1 1 560px; min-width: 560px">
{media}
   </View>
   <View style="flex: 0 0 360px">
    <Header value="Quality: is the segment usable for training? (boundary, label and instruction)" size="5"/>
{_score_choices(QUALITY, main, QUALITY_SCALE, quality_keys, "quality")}
    <Header value="Confidence in your quality score" size="5"/>
{_score_choices(CONFIDENCE, main, CONFIDENCE_SCALE, CONFIDENCE_HOTKEYS, "confidence")}
    <Header value="Corrections (prefilled with the proposal; change only what is wrong)" size="5"/>
    <Choices name="{SUBACTION}" toName="{main}" choice="single-radio" showInline="true">
{subactions}
    </Choices>
    <TextArea name="{INSTRUCTION}" toName="{main}" maxSubmissions="1" editable="true" rows="2" placeholder="atomic instruction"/>
    <Header value={quoteattr(_boundaries_header(cameras))} size="6"/>
    <Header value="{'first frame' if cameras else 'start'}" size="6"/>
    <Number name="{START}" toName="{main}" min="{first}"/>
    <Header value="{'last frame' if cameras else 'end (the frame after the last)'}" size="6"/>
    <Number name="{END}" toName="{main}" min="{first}"/>
   </View>
  </View>
</View>
"""

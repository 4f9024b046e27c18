"""Word classes the rule extractor parses imperative robot instructions with.

General English, not one dataset's vocabulary: the sets are closed classes
(determiners, prepositions, pronouns, position words) plus the verbs of
manipulation. An unlisted verb is still found when it opens a clause and an
object follows ("toggle the switch"); see `rules.find_verb`.
"""

from __future__ import annotations


def words(text: str) -> frozenset[str]:
    return frozenset(text.split())


# Verbs whose object can end up somewhere: a destination in their own clause counts.
PLACING_VERBS = words(
    "put place move push pull slide set drop stack unstack insert lay transfer hang pour throw toss "
    "relocate reposition drag sweep store pack unpack return shift roll hold nudge tip dump load "
    "unload add apply arrange position fit tuck stuff deposit plant mount attach hook rest spread scoot bump poke "
    "knock fold unfold wipe draw hand give send deliver lower raise slot stick leave seal hang"
)
# Verbs that act on the object where it is: only an explicitly directional phrase ("to", "into") is a goal.
ACTING_VERBS = words(
    "pick grasp grab lift take get carry bring open close shut turn rotate twist flip press tap touch use toggle switch "
    "push pull plug unplug cover uncover stir clean empty fill wipe scrub brush squeeze pinch tilt spin "
    "uncap cap unscrew screw tighten loosen unlock lock zip unzip pet shake wave point lift remove "
    "straighten upright stand erect fetch retrieve collect gather find locate catch release let "
    "open unfold fold crumple flatten smooth hit kick pound hammer cut slice chop peel pour sprinkle "
    "water spray mop dust vacuum iron sort stack unstack grip seize knock topple reach cook heat wash "
    "dry rinse operate activate deactivate adjust flick slam unwrap wrap twirl route align assemble "
    "disassemble install insert extract separate swap exchange replace rearrange clear tidy declutter organize "
    "organise pass balance shove squash crush roll unroll tear rip stretch bend tie untie thread scoop mix "
    "crack erase feed serve"
)
MANIPULATION_VERBS = PLACING_VERBS | ACTING_VERBS

# Verbs of going somewhere, not of manipulating: "go to the table and pick up the cup".
MOTION_VERBS = words("go walk navigate approach head come return hover reach move travel drive")
# The robot's own parts are not what it manipulates: "close the gripper and press the button" -> button.
ROBOT_PARTS = words("gripper grippers hand hands finger fingers claw arm end-effector effector jaw jaws")
# Whole instructions that name nothing to manipulate.
NON_OBJECT_WORDS = words("wait stop stay pause idle rest nothing done finish reset home noop")

# Verb + particle pairs read as one verb ("pick up", "turn on"); the particle is skipped.
PHRASAL_PARTICLES = words("up down out off over away on in back around aside apart open")
# Verbs that take "on", "in", "off" or "over" as a particle before the object ("screw in the bulb").
PARTICLE_ON_VERBS = words("turn switch take put knock tip screw plug tuck fold roll hand fill lock log push pull press flip "
                          "wipe brush cross check tick bring")
# Particles that name a direction and may stand between a verb and its object ("rotate left the block").
DIRECTION_WORDS = words(
    "left right up down forward forwards backward backwards upward upwards downward downwards sideways "
    "clockwise counterclockwise anticlockwise counter-clockwise anti-clockwise away back aside over around "
    "upright vertical vertically horizontal horizontally inward inwards outward outwards north south east west "
    "ahead across closer further farther open closed shut flat apart together"
)
# Words (also phrases) that open an instruction without being its verb.
LEAD_WORDS = words(
    "please now then next first firstly finally lastly afterwards also robot okay ok just kindly "
    "carefully gently slowly quickly simply again"
)
LEAD_PHRASES = (
    "can you", "could you", "would you", "will you", "i want you to", "i need you to", "i would like you to",
    "you should", "you need to", "try to", "let's", "lets", "make sure to", "go ahead and", "go and",
    "the robot should", "the task is to", "your task is to", "in order to",
)

DETERMINERS = words("the a an both some all any this that these those its each every either one another")
QUANTITY_WORDS = words("two three four five six seven eight nine ten 2 3 4 5 6 7 8 9 10 several few many more")
# Auxiliaries and copulas end a subject ("the soda cans are scattered ..."); "can" is left out, it is a noun too.
AUXILIARIES = words("is are was were be been being has have had am does do did should must will would could may might")
# Verbs of purpose clauses that are no manipulation: "bring me a drink to help", "about to fall".
PURPOSE_VERBS = words("make let keep help see be have avoid ensure prevent allow fall stay become cook heat wash "
                      "seal finish complete start begin create form build")
# Indirect objects skipped after a verb: "bring me a drink".
RECIPIENTS = words("me us him her")
PRONOUNS = words("it them this that one ones those these itself themselves him her")
# Nouns that stand for an object named before ("the grasped object").
GENERIC_NOUNS = words("object objects thing things item items")
RELATIVE_WORDS = words("that which who whose where when while so until because as if")
CONJUNCTIONS = words("and then but or")
ADVERBS = words(
    "just directly exactly carefully gently slowly quickly fast completely fully slightly partially halfway again too also "
    "firmly softly tightly securely properly neatly"
)

# Prepositions that end a noun phrase. Multi-word ones are matched first (see rules.PREPOSITION_PHRASES).
PREPOSITIONS = words(
    "in into on onto to from at inside outside off out of near between by towards toward with within "
    "behind under underneath beneath over above below beside besides around across along through upon "
    "against for next close beyond past via among amid atop throughout till until except without about"
)
# Where the object comes from, never where it goes.
SOURCE_PREPOSITIONS = ("out of", "off of", "away from", "from", "off", "out")
# Phrases that lead to a goal even after an acting verb ("lift the cup onto the shelf").
DIRECTIONAL_PREPOSITIONS = ("on top of", "into", "onto", "to", "towards", "toward", "inside of")
# Phrases that locate a goal relative to an object; first match wins, so longer first.
GOAL_PREPOSITIONS = (
    "on top of", "in front of", "in between", "left of", "right of", "on the top of", "next to", "close to", "closer to", "adjacent to",
    "to the side of", "inside of", "into", "onto", "inside", "towards", "toward", "underneath", "beneath",
    "between", "behind", "beside", "above", "below", "under", "over", "near", "within", "against", "atop",
    "in", "on", "to", "at", "by", "upon", "through", "along",
)

# Adjectives that say where an object is, or which of several it is: a detector cannot use them.
POSITION_ADJECTIVES = words(
    "left right middle center centre central top bottom front back upper lower first second third fourth "
    "fifth last nearest closest farthest furthest far near rear inner outer leftmost rightmost topmost "
    "bottommost uppermost lowermost front-most frontmost backmost other remaining same opposite "
    "nearby rightward leftward smaller larger bigger taller shorter wider narrower odd matching correct designated "
    "appropriate corresponding proper respective smallest largest biggest tallest shortest"
)
# Participles that describe the object's state in the task, not its looks.
STATE_ADJECTIVES = words("open opened closed grasped stacked held picked lifted placed gripped grabbed lying sitting resting standing located")
# Verbs whose -ing/-ed forms after a noun open a reduced relative clause ("the block lying on the shelf").
PARTICIPLE_STEMS = MANIPULATION_VERBS | words(
    "lie sit rest stand lean locate keep contain fill label mark shape color colour attach connect leave "
    "find see show display mount park float balance perch nestle tuck wedge prop stick hang"
)
# Adjectives naming the result of the task, trailing the object ("leave the table clean").
RESULT_ADJECTIVES = words("clean empty full tidy straight dry wet neat level flat open closed shut upright")
# Colours and materials: "the yellow and white mug" is one object, "the plate and spoon" two.
COLOURS = words(
    "red blue green yellow orange purple pink black white grey gray brown silver gold golden cyan magenta "
    "violet beige tan navy teal maroon transparent clear striped dotted checkered wooden metal metallic plastic "
    "glass ceramic paper cardboard steel"
)
# Verbs whose "with" phrase names the thing held: "wipe the pot with the sponge" -> sponge.
TOOL_VERBS = words("wipe clean scrub sweep brush dust mop stir scoop cut slice chop spread hit")
# Asset and manufacturer names of simulated benchmarks that are no visual category ("akita black bowl").
ASSET_NAMES = words("akita")

# Nouns naming a region of a thing: "the left edge of the pot" -> pot; alone ("to the left side") they name no object.
REGION_NOUNS = words(
    "edge edges side sides top bottom front back middle center centre corner corners end ends left right "
    "surface part area half rim half-way halfway region spot position place location interior inside "
    "outside exterior tip portion section border perimeter direction way compartment layer level row column"
)
# Nouns that only count another ("a stack of cups" -> cups).
QUANTITY_NOUNS = words("stack pile bunch handful pair set group couple lot piece pieces number amount heap")
# Nouns that hold or measure another ("a bag of chips", "a piece of paper"): "X of Y" stays whole.
CONTAINER_NOUNS = words(
    "bag box bottle can jar cup bowl pack packet carton piece pile stack bunch handful pair set sheet roll "
    "tube bar bundle plate glass basket bucket tray loaf slice cube stick pot"
)
# Words that end a phrase of measure: "90 degrees", "5 cm".
MEASURE_UNITS = words("degree degrees cm centimeters centimetres inch inches meter meters mm times percent")

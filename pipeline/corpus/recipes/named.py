"""Recipes of published corpora: one small parser per corpus's file-name convention.

Each parser reads a root-relative path and returns ``Name(label, speaker, gender,
clip_id)``, a reason to skip the file, or None (the name does not follow the layout).
The label is the corpus's own code; ``Recipe.labels`` maps it to the model's emotion
(None: left out). Clip ids are the corpus's own name for a recording, so that a second
copy of a clip in another folder is recognised (and skipped), whatever the folders:
``<corpus>/<canonical stem>``, except RAVDESS's, which is the bare stem
(``ravdess.ClipName.clip_id``): augmentation seeds derive from it.

- ``ravdess``: ``Actor_01/03-01-05-01-02-01-01.wav`` (``recipes.ravdess_names``); speech only;
  label the emotion code 01-08; speaker the two-digit actor; odd actors male.
- ``emovo``: ``f1/dis-f1-b1.wav`` = ``<emotion>-<actor>-<sentence>`` (Costantini et al.
  2014); actors f1-f3 (female), m1-m3 (male), the name's actor wins over the folder's;
  dis disgust, gio joy, neu neutral, pau fear, rab anger, sor surprise, tri sadness.
- ``urdu``: ``Angry/SM1_F10_A010.wav`` = ``S<G><N>_F<XX>_<E><YY>`` (Latif et al. 2018):
  G gender M/F, speaker ``<G><N>``, E A angry, H happy, N neutral, S sad.
- ``cremad``: ``AudioWAV/1001_DFA_ANG_XX.wav`` = ``<actor>_<sentence>_<emotion>_<level>``
  (Cao et al. 2014): ANG, DIS, FEA, HAP, NEU, SAD; level LO MD HI XX. Gender from the
  corpus's ``VideoDemographics.csv`` (ActorID, Sex) in the root or its parent, else "".
- ``tess``: ``OAF_angry/OAF_back_angry.wav`` = ``<speaker>_<word>_<emotion>`` (Dupuis &
  Pichora-Fuller 2010), speakers OAF and YAF (both female), emotion any case: angry,
  disgust, fear, happy, neutral, ps (pleasant surprise), sad.
- ``emodb``: ``wav/03a01Fa.wav`` = speaker (2 digits), text (a01), emotion letter, version
  (Burkhardt et al. 2005): W anger, L boredom (left out), E disgust, A fear, F happiness,
  T sadness, N neutral; male speakers 03 10 11 12 15, female 08 09 13 14 16.
- ``savee``: ``AudioData/DC/a01.wav`` or flat ``DC_a01.wav`` (Haq & Jackson 2009),
  speakers DC JE JK KL (all male); a anger, d disgust, f fear, h happiness, n neutral,
  sa sadness, su surprise, then two digits.
"""

from __future__ import annotations

import csv
import re
from pathlib import Path, PurePosixPath
from typing import Callable, NamedTuple

from pipeline.core import labels
from pipeline.core.errors import CorpusError
from pipeline.corpus.recipes import ravdess_names as ravdess
from pipeline.corpus.recipes.base import Found, Parsed, Recipe, collect, require_rows


class Name(NamedTuple):
    label: str
    speaker: str
    gender: str
    clip_id: str


NameParser = Callable[[PurePosixPath], "Name | str | None"]
GENDER_LETTERS = {"f": "female", "m": "male"}


def run(root: Path, recipe: Recipe, parse: NameParser,
        meanings: dict[str, str] | None = None) -> Found:
    """``recipe``'s rows under ``root``, read by ``parse``. Raises ``CorpusError`` for a
    root that is not a folder or has no labelled file."""
    not_layout = f"name does not follow {recipe.name}'s layout ({recipe.layout})"

    def parsed(relative: PurePosixPath) -> Parsed | str:
        name = parse(relative)
        if name is None or isinstance(name, str):
            return name or not_layout
        return Parsed(name.label, recipe.labels[name.label], name.speaker, name.gender,
                      name.clip_id)

    found = collect(root, corpus=recipe.name, layout=recipe.layout, parse=parsed,
                    meanings=meanings)
    return require_rows(found, root=Path(root), layout=recipe.layout)


def parse_ravdess(relative: PurePosixPath) -> Name | str | None:
    try:
        clip = ravdess.parse_name(relative.stem)
    except ravdess.BadClipName:
        return None
    if not clip.is_speech:
        return "song, not speech"
    return Name(f"{clip.emotion + 1:02d}", f"{clip.actor:02d}", clip.gender, clip.clip_id)


# re.ASCII: under IGNORECASE a Unicode [a-z] also matches the Kelvin sign and the long s.
_EMOVO = re.compile(r"(dis|gio|neu|pau|rab|sor|tri)-([fm][1-3])-([a-z]+[0-9]+)",
                    re.IGNORECASE | re.ASCII)


def parse_emovo(relative: PurePosixPath) -> Name | None:
    match = _EMOVO.fullmatch(relative.stem)
    if not match:
        return None
    emotion, actor, sentence = (part.lower() for part in match.groups())
    return Name(emotion, actor, GENDER_LETTERS[actor[0]], f"emovo/{emotion}-{actor}-{sentence}")


_URDU = re.compile(r"S([MF])([0-9]+)_F[0-9]+_([AHNS])[0-9]+")


def parse_urdu(relative: PurePosixPath) -> Name | None:
    match = _URDU.fullmatch(relative.stem)
    if not match:
        return None
    gender, number, emotion = match.groups()
    return Name(emotion, f"{gender}{number}", GENDER_LETTERS[gender.lower()],
                f"urdu/{relative.stem}")


_CREMAD = re.compile(r"([0-9]{4})_[A-Z]{3}_(ANG|DIS|FEA|HAP|NEU|SAD)_[A-Z]{2}")
DEMOGRAPHICS = "VideoDemographics.csv"


def parse_cremad(relative: PurePosixPath, *, genders: dict[str, str]) -> Name | None:
    match = _CREMAD.fullmatch(relative.stem)
    if not match:
        return None
    actor, emotion = match.groups()
    return Name(emotion, actor, genders.get(actor, ""), f"cremad/{relative.stem}")


def cremad_genders(root: Path) -> dict[str, str]:
    """Actor id -> "female" / "male" from CREMA-D's ``VideoDemographics.csv`` in ``root``
    or its parent; {} when there is none. Raises ``CorpusError`` naming the file when it
    cannot be read or lacks the ActorID and Sex columns."""
    root = Path(root).resolve()
    for folder in (root, root.parent):
        path = folder / DEMOGRAPHICS
        if not path.is_file():
            continue
        try:
            with path.open(encoding="utf-8-sig", newline="") as file:
                reader = csv.DictReader(file)
                records = list(reader)
                columns = reader.fieldnames or []
        except (OSError, UnicodeDecodeError, csv.Error) as exc:
            raise CorpusError(f"{path} cannot be read ({exc}): restore CREMA-D's "
                              f"{DEMOGRAPHICS} or move it away") from None
        if not {"ActorID", "Sex"} <= set(columns):
            raise CorpusError(f"{path} has no ActorID and Sex columns (it has "
                              f"{', '.join(columns) or 'none'}): restore CREMA-D's "
                              f"{DEMOGRAPHICS} or move it away")
        sexes = {(r["ActorID"] or "").strip(): (r["Sex"] or "").strip().lower()
                 for r in records}
        return {actor: sex for actor, sex in sexes.items() if sex in ("female", "male")}
    return {}


_TESS = re.compile(r"(OAF|YAF)_(.+)_([a-z]+)", re.IGNORECASE | re.ASCII)
TESS_LABELS = {"angry": "angry", "disgust": "disgust", "fear": "fearful", "happy": "happy",
               "neutral": "neutral", "ps": "surprised", "sad": "sad"}


def parse_tess(relative: PurePosixPath) -> Name | None:
    match = _TESS.fullmatch(relative.stem)
    if not match or match[3].lower() not in TESS_LABELS:
        return None
    speaker, word, emotion = match[1].upper(), match[2].lower(), match[3].lower()
    return Name(emotion, speaker, "female", f"tess/{speaker}_{word}_{emotion}")


_EMODB = re.compile(r"(03|08|09|10|11|12|13|14|15|16)[a-z][0-9]{2}([WLEAFTN])[a-z]")
EMODB_MALE = frozenset({"03", "10", "11", "12", "15"})


def parse_emodb(relative: PurePosixPath) -> Name | None:
    match = _EMODB.fullmatch(relative.stem)
    if not match:
        return None
    speaker, emotion = match.groups()
    gender = "male" if speaker in EMODB_MALE else "female"
    return Name(emotion, speaker, gender, f"emodb/{relative.stem}")


_SAVEE = re.compile(r"(?:(DC|JE|JK|KL)_)?(sa|su|a|d|f|h|n)([0-9]{2})")
SAVEE_SPEAKERS = ("DC", "JE", "JK", "KL")


def parse_savee(relative: PurePosixPath) -> Name | None:
    match = _SAVEE.fullmatch(relative.stem)
    if not match:
        return None
    speaker = match[1] or relative.parent.name
    if speaker not in SAVEE_SPEAKERS:
        return None
    return Name(match[2], speaker, "male", f"savee/{speaker}_{match[2]}{match[3]}")


def find_ravdess(root: Path) -> Found:
    return run(root, RECIPES["ravdess"], parse_ravdess)


def find_emovo(root: Path) -> Found:
    return run(root, RECIPES["emovo"], parse_emovo)


def find_urdu(root: Path) -> Found:
    return run(root, RECIPES["urdu"], parse_urdu)


def find_cremad(root: Path) -> Found:
    genders = cremad_genders(root) if Path(root).is_dir() else {}
    return run(root, RECIPES["cremad"], lambda path: parse_cremad(path, genders=genders))


def find_tess(root: Path) -> Found:
    return run(root, RECIPES["tess"], parse_tess)


def find_emodb(root: Path) -> Found:
    return run(root, RECIPES["emodb"], parse_emodb, meanings={"L": "boredom"})


def find_savee(root: Path) -> Found:
    return run(root, RECIPES["savee"], parse_savee)


RECIPES: dict[str, Recipe] = {r.name: r for r in (
    Recipe("ravdess", "Actor_01/03-01-05-01-02-01-01.wav",
            {f"{i:02d}": emotion for i, emotion in enumerate(labels.EMOTIONS, 1)}, "English",
            "Livingstone & Russo 2018, The Ryerson Audio-Visual Database of Emotional Speech "
            "and Song (RAVDESS), PLoS ONE 13(5) e0196391, https://zenodo.org/record/1188976",
            find_ravdess, licence="CC BY-NC-SA 4.0 (non-commercial, share alike)"),
    Recipe("emovo", "f1/dis-f1-b1.wav",
            {"dis": "disgust", "gio": "happy", "neu": "neutral", "pau": "fearful",
             "rab": "angry", "sor": "surprised", "tri": "sad"}, "Italian",
            "Costantini, Iaderola, Paoloni & Todisco 2014, EMOVO Corpus: an Italian Emotional "
            "Speech Database, LREC 2014", find_emovo,
            licence="free for research use; no open licence"),
    Recipe("urdu", "Angry/SM1_F10_A010.wav",
            {"A": "angry", "H": "happy", "N": "neutral", "S": "sad"}, "Urdu",
            "Latif, Qayyum, Usman & Qadir 2018, Cross Lingual Speech Emotion Recognition: "
            "Urdu vs. Western Languages, arXiv:1812.10411, "
            "https://github.com/siddiquelatif/URDU-Dataset", find_urdu,
            licence="research use only"),
    Recipe("cremad", "AudioWAV/1001_DFA_ANG_XX.wav",
            {"ANG": "angry", "DIS": "disgust", "FEA": "fearful", "HAP": "happy",
             "NEU": "neutral", "SAD": "sad"}, "English",
            "Cao, Cooper, Keutmann, Gur, Nenkova & Verma 2014, CREMA-D: Crowd-sourced "
            "Emotional Multimodal Actors Dataset, IEEE Trans. Affective Computing 5(4), "
            "https://github.com/CheyneyComputerScience/CREMA-D", find_cremad,
            licence="Open Database License (ODbL) 1.0"),
    Recipe("tess", "OAF_angry/OAF_back_angry.wav", TESS_LABELS, "English",
            "Dupuis & Pichora-Fuller 2010, Toronto Emotional Speech Set (TESS), University "
            "of Toronto, https://doi.org/10.5683/SP2/E8H2MF", find_tess),
    Recipe("emodb", "wav/03a01Fa.wav",
            {"W": "angry", "L": None, "E": "disgust", "A": "fearful", "F": "happy",
             "T": "sad", "N": "neutral"}, "German",
            "Burkhardt, Paeschke, Rolfes, Sendlmeier & Weiss 2005, A Database of German "
            "Emotional Speech, Interspeech 2005, http://emodb.bilderbar.info/", find_emodb),
    Recipe("savee", "AudioData/DC/a01.wav",
            {"a": "angry", "d": "disgust", "f": "fearful", "h": "happy", "n": "neutral",
             "sa": "sad", "su": "surprised"}, "English",
            "Haq & Jackson 2009, Speaker-Dependent Audio-Visual Emotion Recognition, AVSP "
            "2009, http://kahlan.eps.surrey.ac.uk/savee/", find_savee),
)}

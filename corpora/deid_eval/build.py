"""Build the de-identification evaluation set (dev and test splits) from marked-up sources.

Run from the repository root: ``.venv/bin/python corpora/deid_eval/build.py``. Deterministic: the same
sources give byte-identical files.

Sources are of two kinds:

* hand-written transcripts under ``source/<split>/`` in which every identifier is marked inline as
  ``⟦TYPE|text⟧`` and every hard negative (a word that looks like a name but is not an identifier) as
  ``⟦NEG|text⟧``;
* generated material made here from per-split sentence templates and value pools (``DEV`` and ``TEST``
  below are disjoint: different templates, different names, streets, numbers), with a seeded RNG.

The marked-up files are written to a temporary corpus, read with the project's own ingest stage, and the
markers are then stripped from each ingested turn; offsets are recorded in the stripped text. The final
files (without markers) are written to ``<split>/`` and ingested again to check that every document's
text equals the stripped text, so the offsets are exactly those of the ingest stage's output.

Offset space (see README.md): for a document (``file``, ``record_key``) the *ingest text* is
``"\\n".join(turn.text for turn in document.turns)`` of :func:`pipeline.ingest.ingest_corpus`;
``start``/``end`` are Python code-point offsets into it.
"""

from __future__ import annotations

import csv
import io
import random
import re
import shutil
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(ROOT))

from pipeline.config import RunConfig  # noqa: E402
from pipeline.ingest import ingest_corpus, load_corpus_config  # noqa: E402

MARK = re.compile(r"⟦([A-Z]+)\|([^⟧]+)⟧")
TYPES = ("NAME", "PHONE", "EMAIL", "ADDRESS", "PLACE", "ORG", "DATE", "AGE", "ID", "URL")

CORPUS_YAML = """# De-identification evaluation split (fictional, written for this project).
exclude: ["**/*.yaml", "**/*.yml", "**/*.md", "**/*.json", "labels.csv", "negatives.csv"]
source_types:
  "interviews/**": interview
  "sessions/**": session
  "feedback/**": feedback
"""


def m(kind: str, text: str) -> str:
    """Mark ``text`` as an identifier of ``kind`` (or ``NEG`` for a hard negative)."""
    return f"⟦{kind}|{text}⟧"


# --------------------------------------------------------------------------------------------------
# Spoken forms
_DIGIT = {"0": "oh", "1": "one", "2": "two", "3": "three", "4": "four", "5": "five", "6": "six", "7": "seven",
          "8": "eight", "9": "nine"}


def spoken_digits(number: str, rng: random.Random) -> str:
    """Read a digit string aloud the British way: "oh seven seven double nine, ...", groups by the spaces."""
    groups = number.split()
    out = []
    for g in groups:
        words, i = [], 0
        while i < len(g):
            if i + 1 < len(g) and g[i] == g[i + 1] and rng.random() < 0.8:
                words.append(f"double {_DIGIT[g[i]]}")
                i += 2
            else:
                words.append(_DIGIT[g[i]] if g[i] != "0" or rng.random() < 0.8 else "zero")
                i += 1
        out.append(" ".join(words))
    return rng.choice([", ", " ", ", "]).join(out)


_ORDINALS = ["first", "second", "third", "fourth", "fifth", "sixth", "seventh", "eighth", "ninth", "tenth",
             "eleventh", "twelfth", "thirteenth", "fourteenth", "fifteenth", "sixteenth", "seventeenth",
             "eighteenth", "nineteenth", "twentieth", "twenty-first", "twenty-second", "twenty-third",
             "twenty-fourth", "twenty-fifth", "twenty-sixth", "twenty-seventh", "twenty-eighth"]
_MONTHS = ["January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
           "November", "December"]
_UNITS = ["", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]


def suffix(d: int) -> str:
    """English ordinal suffix of ``d``."""
    return "th" if 11 <= d % 100 <= 13 else {1: "st", 2: "nd", 3: "rd"}.get(d % 10, "th")


def spoken_date(rng: random.Random, style: int) -> str:
    """A date as people say or write it; ``style`` picks the form."""
    d, mo, y = rng.randint(1, 28), rng.randrange(12), rng.choice([2023, 2024, 2025, 2026])
    month = _MONTHS[mo]
    forms = [
        f"the {_ORDINALS[d - 1]} of {month}",
        f"{month} the {d}{suffix(d)}",
        f"{d}{suffix(d)} {month}",
        f"{d} {month} {y}",
        f"{d:02d}/{mo + 1:02d}/{y}",
        f"{month} {d}, {y}",
        f"the {d}{suffix(d)} of {month.lower()}",
        f"{y}-{mo + 1:02d}-{d:02d}",
        f"{d}.{mo + 1}.{str(y)[2:]}",
        f"{month} {_ORDINALS[d - 1]}",
    ]
    return forms[style % len(forms)]


def spoken_age(rng: random.Random) -> str:
    """An age over 89 in words or digits."""
    n = rng.randint(90, 104)
    if rng.random() < 0.5:
        return str(n)
    if n < 100:
        return "ninety" + (f"-{_UNITS[n - 90]}" if n > 90 else "")
    return "a hundred" + (f" and {_UNITS[n - 100]}" if n > 100 else "")


# --------------------------------------------------------------------------------------------------
# Per-split pools and templates. Slots: {NAME} {NAME2} {FIRST} {first} {SURNAME} {NICK} {FULLNICK}
# {PHONE} {EMAIL} {ADDRESS} {POSTCODE} {PLACE} {ORG} {DATE} {AGE} {ID} {URL}; {NEG:word} marks a hard
# negative. Each slot is filled with a fresh value from the split's pools and marked with its type.
DEV = {
    "first": ["Sarah", "Aisha", "Tom", "Grace", "Daniel", "Priya", "Kofi", "Megan", "Hamza", "Lucy", "Siobhan",
              "Tariq", "Chloe", "Ewan", "Amara", "Jakub", "Rosie", "Yusuf", "Niamh", "Connor", "Fatima",
              "Oliver", "Imogen", "Dylan", "Zara", "Bethan", "Rohan", "Agnieszka", "Callie", "Marcus"],
    "surname": ["Hughes", "Begum", "Whitfield", "Okonkwo", "Patel", "Lindqvist", "Brennan", "Achterberg",
                "Mensah", "Rowntree", "Kowalczyk", "Dunmore", "Ferreira", "Gallagher", "Iqbal", "Thorne",
                "McAllister", "Oyelaran", "Sutcliffe", "Varga"],
    "nick": [("Elizabeth", "Lizzie"), ("Robert", "Rob"), ("Katherine", "Kath"), ("Alexander", "Sandy"),
             ("Margaret", "Peggy"), ("Jonathan", "Jonno"), ("Rebecca", "Becks"), ("William", "Billy"),
             ("Samantha", "Sam"), ("Christopher", "Kit")],
    "street": ["Hollins", "Cliff", "Belle Vue", "Sandford", "Moor", "Oakwood", "Harehills", "Chapel",
               "Spencer", "Woodhouse", "Clarendon", "Marlborough", "Victoria", "Granby", "Ashgrove"],
    "street_type": ["Road", "Street", "Avenue", "Lane", "Close", "Terrace", "Grove", "Crescent", "Drive",
                    "Gardens", "Way", "Place"],
    "postcode": ["LS6 2AB", "M21 9QT", "S7 1FE", "BD9 4RR", "HX3 6AZ", "LS11 5HQ", "WF1 2DB", "YO10 3JX"],
    "place": ["Headingley", "Otley", "Pudsey", "Ilkley", "Bradford", "Wakefield", "Chapel Allerton",
              "Meanwood", "Harrogate", "Keighley", "Morley", "Roundhay", "Castleford", "Batley"],
    "org": ["Leeds General Infirmary", "St James's Hospital", "Roundhay High School", "Asda", "Leeds Beckett",
            "Aire Valley Counselling", "Chapeltown Youth Club", "First Bus", "Yorkshire Water",
            "Meanwood Primary", "Wakefield College", "the Becklin Centre", "Marks and Spencer",
            "Harrogate Grammar"],
    "email_domain": ["example.com", "example.co.uk", "mail.example.org", "example.net", "uni.example.ac.uk"],
    "url": ["www.moodjournal.example.com", "https://calmspace.example.org/sleep", "worrytree.example.co.uk",
            "http://www.leedsmind.example.org.uk/groups", "https://example.com/forms/feedback?id=22",
            "bit.example.ly/3xYzQ", "www.getselfhelp.example.co.uk/cbt", "https://forum.example.net/t/4471"],
    "neg": ["Hope", "Joy", "Will", "March", "May", "CBT", "DBT", "EMDR", "Mindfulness", "Christmas",
            "Compassion", "Zoom", "Monday", "Anyway", "Honestly", "Homework", "Session", "Therapy",
            "Sunday", "Grace", "Faith", "Bank Holiday", "Thought Record", "PHQ-9", "GAD-7", "Google",
            "Well", "Mum", "Dad", "Panic", "Recovery", "Worry Tree", "Schema", "Gestalt", "IAPT"],
}
DEV_TEMPLATES = [
    "{NAME} was my therapist and honestly she changed my life.",
    "i told {first} i wasn't ready to talk about it and she was fine with that.",
    "{FIRST}'s way of summarising things at the end really helped.",
    "My counsellor {FIRST} kept checking in by text from {PHONE}, which felt a bit much.",
    "Please call me back on {PHONE}, I can't always answer during the day.",
    "my number has changed, its {PHONE} now",
    "You can email me at {EMAIL} if there are any more forms.",
    "send the letter to {EMAIL} not my work one",
    "I moved to {ADDRESS}, {PLACE} last month, so the bus takes ages.",
    "Post the appointment letters to {ADDRESS}, {POSTCODE} please.",
    "we live on {ADDRESS} near the park so the walk is fine",
    "I started at {ORG} in September and the stress has been unreal.",
    "My son is at {ORG} and the teachers are no help.",
    "The first appointment was {DATE} and I nearly didn't come.",
    "my nan is {AGE} and still the sharpest person I know",
    "my grandad died at {AGE} last year and I still think about him every day.",
    "My NHS number is {ID} if you need it for the referral.",
    "I found the {NEG} worksheet on {URL}, is that the right one?",
    "The {NEG} stuff didn't work for me but {FIRST} never made me feel bad about it.",
    "{NEG} is hard for me right now, but {FIRST} says that's normal.",
    "{NEG} the sessions were fine, just too short.",
    "I'd rather do {NEG} in person than on {NEG}.",
    "my sister {NICK} ({FULLNICK} really, but nobody calls her that) came with me once.",
    "{SURNAME} from the crisis team rang me on {DATE}.",
    "I grew up in {PLACE} and my dad still lives there.",
    "Dr {SURNAME}'s referral took months, and then {ORG} lost it.",
    "me and {first} {surname} went to school together which was weird when i saw her in the waiting room",
    "I've been seeing {NAME} at {ORG} since {DATE}.",
    "Ring {PHONE} and ask for {FIRST}, she's the only one who knows my case.",
    "If you need me I'm on {PHONE} or {EMAIL}.",
    "Hospital record number {ID}, they told me to quote it.",
    "the group is on {NEG} mornings at the library on {ADDRESS}",
    "{NEG}, I think the homework was the most useful bit.",
    "My husband {FIRST} thinks I'm doing better, and {first} is usually right.",
    "there's a video about {NEG} at {URL} that my friend sent me",
    "The self-help pages ({URL}) were more use than the leaflet.",
    "they gave me a case number, {ID}, and said to quote it every time",
    "her patient id was {ID} on the wristband",
    "gran's {AGE} next month and wants a party at {ORG}",
    "We used to go to {PLACE} every summer when I was little.",
    "i had a panic attack on the train to {PLACE} and had to get off",
    "{DATE} is the anniversary so I always struggle around then.",
    "my court date is {DATE}, which is why I've been so on edge",
]
DEV_NEG_TEMPLATES = [
    "{NEG} and {NEG} are the two things I want to work on.",
    "We did a bit of {NEG} and then talked about {NEG}.",
    "{NEG}, to be fair, the {NEG} exercise was useful.",
    "I keep a {NEG} diary now, every {NEG} night.",
    "{NEG} was hard. {NEG} too.",
]
TEST = {
    "first": ["Hannah", "Kwame", "Isla", "Mohammed", "Freya", "Anil", "Molly", "Declan", "Sade", "Jamie",
              "Ffion", "Bilal", "Esther", "Craig", "Leila", "Tomasz", "Poppy", "Ibrahim", "Orla", "Nathan",
              "Mei", "Gareth", "Ruby", "Ifeoma", "Kieran", "Nadia", "Ross", "Harriet", "Stefan", "Abi"],
    "surname": ["Lawson", "Chowdhury", "Pemberton", "Adebayo", "Novak", "Crossley", "Ahmed", "Doherty",
                "Ellwood", "Nakamura", "Quinlan", "Osei", "Bartram", "Sokolov", "Hendry", "Mahmood",
                "Whittaker", "Fitzgerald", "Llewellyn", "Okoro"],
    "nick": [("Victoria", "Tori"), ("Richard", "Dickie"), ("Josephine", "Jo"), ("Benjamin", "Benji"),
             ("Charlotte", "Lottie"), ("Edward", "Ted"), ("Eleanor", "Nell"), ("Thomas", "Tommy"),
             ("Patricia", "Trish"), ("Nicholas", "Nico")],
    "street": ["Gloucester", "Whitworth", "Ladybarn", "Albany", "Heaton", "Mauldeth", "Wilbraham", "Egerton",
               "Kingsway", "Sefton", "Lapwing", "Cromwell", "Denmark", "Beaumont", "Rusholme"],
    "street_type": ["Road", "Street", "Avenue", "Lane", "Close", "Mews", "Rise", "Walk", "Court", "Row",
                    "Square", "Park"],
    "postcode": ["M14 6PH", "M20 2XR", "SK4 1BN", "OL1 3EQ", "BL1 8TY", "WA15 7NL", "M8 0QD", "CF10 1EP"],
    "place": ["Didsbury", "Stockport", "Levenshulme", "Salford", "Oldham", "Bolton", "Altrincham", "Wigan",
              "Prestwich", "Withington", "Rochdale", "Sale", "Fallowfield", "Stretford"],
    "org": ["Wythenshawe Hospital", "Stepping Hill Hospital", "Parrs Wood High", "Tesco", "the Co-op Bank",
            "Salford University", "Manchester Metropolitan University", "Stockport College", "Bupa",
            "Withington Community Hospital", "Sainsbury's", "Trafford General", "the Maggie's centre",
            "Bolton School"],
    "email_domain": ["example.org", "example.co.uk", "post.example.com", "example.ac.uk", "example.io"],
    "url": ["https://www.sleepwell.example.com/course", "www.anxietyhelp.example.org.uk", "example.org/wellbeing",
            "https://docs.example.com/d/1aB2cD", "www.stockportmind.example.co.uk/events",
            "http://bookings.example.net/clinic?ref=77", "calm.example.io/breathe", "https://example.co.uk/survey"],
    "neg": ["Joy", "Hope", "Will", "April", "June", "ACT", "CBT", "DBT", "Mindfulness", "Easter", "Teams",
            "Tuesday", "Friday", "Sometimes", "Actually", "Breathing", "Journal", "Therapist", "Patience",
            "Faith", "Summer", "Self-Compassion", "Worksheet", "WhatsApp", "Mood", "Anxiety", "Christmas",
            "Family", "Beck", "Sunday", "Talking Therapies", "Behavioural Activation", "EMDR", "PTSD", "Friends"],
}
TEST_NEG_TEMPLATES = [
    "I'd say {NEG} more than {NEG}, if that makes sense.",
    "{NEG} we looked at {NEG} again.",
    "Some weeks {NEG} feels out of reach, other weeks {NEG} is fine.",
    "we tried {NEG} after {NEG} didn't help",
    "{NEG}. That's the word. {NEG} as well, maybe.",
]
TEST_TEMPLATES = [
    "{FIRST} was patient with me even when I wasn't with myself.",
    "honestly {first} is the reason i kept coming back",
    "I liked that {NAME} wrote everything down for me.",
    "my key worker {FIRST} phoned from {PHONE} but i didn't recognise the number",
    "Can someone ring me on {PHONE}? Mornings are best.",
    "new mobile: {PHONE}",
    "Best email for me is {EMAIL}, thanks.",
    "pls use {EMAIL} from now on",
    "We've just moved to {ADDRESS} in {PLACE}, so I might be late sometimes.",
    "My address for the letters is {ADDRESS}, {PLACE}, {POSTCODE}.",
    "i'm at {ADDRESS} now, the one with the blue door",
    "Work at {ORG} has been a nightmare since the restructure.",
    "My daughter goes to {ORG} and gets bullied.",
    "I was discharged on {DATE} and referred here after.",
    "my great aunt turned {AGE} in the spring",
    "Mum is {AGE} and she still worries about me more than I worry about her.",
    "My hospital number is {ID}.",
    "I looked up {NEG} on {URL} before the session.",
    "{NEG} helped a bit but {FIRST} said we could try something else.",
    "{NEG} is something I'm working on with {FIRST}.",
    "{NEG}, the sessions were the best part of my week.",
    "I'd prefer {NEG} sessions to {NEG} calls.",
    "my brother {NICK} (it's {FULLNICK} on his passport) came to the last one",
    "{SURNAME} from reception called on {DATE} to move my slot.",
    "I'm from {PLACE} originally.",
    "Dr {SURNAME}'s letter was lost by {ORG}.",
    "{first} {surname} and i used to work together so it was awkward at first",
    "I've been with {NAME} at {ORG} since {DATE}.",
    "Text {PHONE} and say it's for {FIRST}.",
    "You can reach me on {PHONE} or at {EMAIL}.",
    "The reference on my letter is {ID}.",
    "there's a group at the community centre on {ADDRESS} every {NEG}",
    "{NEG}, I think the breathing was the most useful thing.",
    "My wife {FIRST} noticed the change first, {first} notices everything.",
    "someone on {URL} said the same thing happened to them",
    "I printed the worksheet from {URL} but lost it.",
    "quote {ID} when you ring, that's my reference",
    "His MRN is {ID} apparently, I had to give it at the desk",
    "my grandad is {AGE} and lives on his own in {PLACE}",
    "She moved to {PLACE} after the divorce.",
    "the drive back from {PLACE} gives me time to think",
    "I've got the tribunal on {DATE} and I can't sleep.",
    "{DATE} was the last time I saw him.",
]


def make_phone(rng: random.Random, style: int) -> str:
    """A fictional phone number (Ofcom drama ranges and 555-01xx) in one of several written or spoken forms."""
    tail = f"{rng.randint(0, 999):03d}"
    forms = [
        f"07700 900{tail}",
        f"07700900{tail}",
        f"+44 7700 900{tail}",
        f"0113 496 0{tail}",
        f"0161 496 0{tail}",
        f"020 7946 0{tail}",
        f"(0114) 496 0{tail}",
        f"555-01{tail[:2]}",
        f"555 01{tail[:2]}",
        f"(212) 555-01{tail[:2]}",
        f"+44 (0)20 7946 0{tail}",
        "SPOKEN:07700 900" + tail,
        "SPOKEN:0113 496 0" + tail,
        f"07700-900-{tail}",
    ]
    form = forms[style % len(forms)]
    if form.startswith("SPOKEN:"):
        return spoken_digits(form[7:], rng)
    return form


def make_email(pool: dict, rng: random.Random, style: int) -> str:
    """A fictional e-mail address in an example domain, written or read out."""
    f, s = rng.choice(pool["first"]).lower(), rng.choice(pool["surname"]).lower()
    dom = rng.choice(pool["email_domain"])
    local = [f"{f}.{s}", f"{f}{s[0]}{rng.randint(1, 99)}", f"{f[0]}{s}", f"{f}_{s}{rng.randint(70, 99)}",
             f"{s}.{f}", f"{f}{rng.randint(100, 999)}"][style % 6]
    if style % 7 == 6:  # read out loud
        return f"{local.replace('.', ' dot ').replace('_', ' underscore ')} at {dom.replace('.', ' dot ')}"
    return f"{local}@{dom}"


def make_address(pool: dict, rng: random.Random, style: int) -> str:
    """A fictional street address (the street part; towns and postcodes are separate slots)."""
    n = rng.randint(1, 240)
    street = f"{rng.choice(pool['street'])} {rng.choice(pool['street_type'])}"
    forms = [f"{n} {street}", f"flat {rng.randint(1, 12)}, {n} {street}", f"{n}a {street}",
             f"{n} {street.lower()}", f"Flat {rng.randint(1, 9)}B {n} {street}", f"{n} {street}"]
    return forms[style % len(forms)]


def make_id(rng: random.Random, style: int) -> str:
    """A fictional record number (NHS-number layout, MRN, hospital and case references)."""
    forms = [f"{rng.randint(400, 999)} {rng.randint(100, 999)} {rng.randint(1000, 9999)}",
             f"{rng.randint(1000000, 9999999)}", f"K{rng.randint(1000000, 9999999)}",
             f"RX-{rng.randint(10000, 99999)}", f"{rng.randint(400, 999)}-{rng.randint(100, 999)}-"
             f"{rng.randint(1000, 9999)}", f"MRN{rng.randint(100000, 999999)}"]
    return forms[style % len(forms)]


def fill(template: str, pool: dict, rng: random.Random, counter: list[int]) -> str:
    """Fill a template's slots with marked values from ``pool``."""

    def value(slot: str) -> str:
        counter[0] += 1
        k = counter[0]
        first, surname = rng.choice(pool["first"]), rng.choice(pool["surname"])
        if slot == "NAME":
            return m("NAME", f"{first} {surname}")
        if slot == "FIRST":
            return m("NAME", first)
        if slot == "first":
            return m("NAME", first.lower())
        if slot == "SURNAME":
            return m("NAME", surname)
        if slot == "surname":
            return m("NAME", surname.lower())
        if slot in ("NICK", "FULLNICK"):
            full, nick = pool["nick"][k % len(pool["nick"])]
            return m("NAME", nick if slot == "NICK" else full)
        if slot == "PHONE":
            return m("PHONE", make_phone(rng, k))
        if slot == "EMAIL":
            return m("EMAIL", make_email(pool, rng, k))
        if slot == "ADDRESS":
            return m("ADDRESS", make_address(pool, rng, k))
        if slot == "POSTCODE":
            return m("ADDRESS", rng.choice(pool["postcode"]))
        if slot == "PLACE":
            return m("PLACE", rng.choice(pool["place"]))
        if slot == "ORG":
            org = rng.choice(pool["org"])
            return ("the " + m("ORG", org[4:])) if org.startswith("the ") else m("ORG", org)
        if slot == "DATE":
            return m("DATE", spoken_date(rng, k))
        if slot == "AGE":
            return m("AGE", spoken_age(rng))
        if slot == "ID":
            return m("ID", make_id(rng, k))
        if slot == "URL":
            return m("URL", rng.choice(pool["url"]))
        if slot == "NEG":
            return m("NEG", pool["neg"][k % len(pool["neg"])])
        raise KeyError(slot)

    # "(it's {FULLNICK}" must pair with the preceding {NICK}: fill left to right with a shared counter.
    out = []
    pos = 0
    for mt in re.finditer(r"\{(\w+)\}", template):
        out.append(template[pos : mt.start()])
        slot = mt.group(1)
        if slot == "FULLNICK":
            counter[0] -= 1
        out.append(value(slot))
        pos = mt.end()
    out.append(template[pos:])
    return "".join(out)


def generated_files(split: str, hand_counts: dict[str, int]) -> dict[str, str]:
    """Marked-up generated files of a split: a feedback csv and one long templated session transcript."""
    pool, templates, negs = (DEV, DEV_TEMPLATES, DEV_NEG_TEMPLATES) if split == "dev" else (
        TEST, TEST_TEMPLATES, TEST_NEG_TEMPLATES)
    rng = random.Random(f"deid-eval-{split}")
    counter = [0]
    # Cycle through the templates until every type has enough labels in the split (hand-written ones count).
    target = {t: (45 if t in ("NAME", "PHONE", "EMAIL", "ADDRESS") else 24) for t in TYPES}
    have = dict(hand_counts)
    sentences: list[str] = []
    for _ in range(40):
        for t in templates:
            needed = [k for k in TYPES if "{" + k in t.replace("{first", "{NAME").replace("{FIRST", "{NAME")
                      .replace("{SURNAME", "{NAME").replace("{surname", "{NAME").replace("{NICK", "{NAME")
                      .replace("{POSTCODE", "{ADDRESS") and have.get(k, 0) < target[k]]
            if not needed and sentences:
                continue
            s = fill(t, pool, rng, counter)
            for mt in MARK.finditer(s):
                have[mt.group(1)] = have.get(mt.group(1), 0) + 1
            sentences.append(s)
        if all(have.get(k, 0) >= target[k] for k in TYPES):
            break
    while have.get("NEG", 0) < 200:  # hard negatives: words that look like names but are not identifiers
        s = fill(negs[len(sentences) % len(negs)], pool, rng, counter)
        have["NEG"] = have.get("NEG", 0) + s.count("⟦NEG|")
        sentences.append(s)
    rng.shuffle(sentences)
    half = len(sentences) // 2
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["response_id", "client_id", "session_number", "date", "clinician", "comment"])
    for i in range(0, half, 2):
        comment = " ".join(sentences[i : i + 2])
        w.writerow([f"R{i // 2 + 1:04d}", f"C{100 + i}", 1 + i % 9, f"2026-0{1 + i % 9}-1{i % 10}", "", comment])
    lines = []
    for i, s in enumerate(sentences[half:]):
        speaker = "Client" if i % 3 else "Therapist"
        lines.append(f"{speaker}: {s}")
    sid = "G51_s01" if split == "dev" else "G71_s01"
    return {"feedback/feedback_generated.csv": buf.getvalue(), f"sessions/{sid}.txt": "\n\n".join(lines) + "\n"}


# --------------------------------------------------------------------------------------------------
def strip_marks(text: str) -> tuple[str, list[tuple[int, int, str, str]]]:
    """Remove markers; return the clean text and (start, end, type, text) per marker."""
    out, spans, pos, clean_len = [], [], 0, 0
    for mt in MARK.finditer(text):
        out.append(text[pos : mt.start()])
        clean_len += mt.start() - pos
        value = mt.group(2)
        spans.append((clean_len, clean_len + len(value), mt.group(1), value))
        out.append(value)
        clean_len += len(value)
        pos = mt.end()
    out.append(text[pos:])
    return "".join(out), spans


def ingest_texts(folder: Path) -> dict[tuple[str, str], str]:
    """Ingest a corpus folder; map (file, record_key) -> ingest text."""
    cfg = RunConfig()
    result = ingest_corpus(folder, load_corpus_config(folder, cfg.ingest))
    if result.problems:
        raise SystemExit(f"ingest problems in {folder}: {[(p.file, p.line, p.code) for p in result.problems]}")
    return {(d.source_path, d.record_key): "\n".join(t.text for t in d.turns) for d in result.documents}


def build_split(split: str) -> dict[str, int]:
    """Write ``<split>/`` with files, labels.csv and negatives.csv; return label counts by origin."""
    src = HERE / "source" / split
    marked: dict[str, str] = {}
    for path in sorted(src.rglob("*")):
        if path.is_file():
            marked[path.relative_to(src).as_posix()] = path.read_text(encoding="utf-8")
    hand_files = {k for k in marked if not k.endswith(".yaml")}
    hand_counts: dict[str, int] = {}
    for rel in hand_files:
        for mt in MARK.finditer(marked[rel]):
            hand_counts[mt.group(1)] = hand_counts.get(mt.group(1), 0) + 1
    marked.update(generated_files(split, hand_counts))
    out = HERE / split
    with tempfile.TemporaryDirectory() as tmp:
        tmpdir = Path(tmp)
        for rel, text in marked.items():
            (tmpdir / rel).parent.mkdir(parents=True, exist_ok=True)
            (tmpdir / rel).write_text(text, encoding="utf-8")
        (tmpdir / "corpus.yaml").write_text(CORPUS_YAML, encoding="utf-8")
        marked_docs = ingest_texts(tmpdir)
    if out.exists():
        shutil.rmtree(out)
    out.mkdir()
    (out / "corpus.yaml").write_text(CORPUS_YAML, encoding="utf-8")
    for rel, text in marked.items():
        (out / rel).parent.mkdir(parents=True, exist_ok=True)
        (out / rel).write_text(MARK.sub(lambda mt: mt.group(2), text), encoding="utf-8")
    clean_docs = ingest_texts(out)
    labels, negatives = [], []
    counts: dict[str, int] = {}
    for (file, key), text in sorted(marked_docs.items()):
        clean, spans = strip_marks(text)
        if clean_docs.get((file, key)) != clean:
            raise SystemExit(f"ingest text of {file} {key} differs without markers: offsets would be wrong")
        origin = "hand" if file in hand_files else "generated"
        for start, end, kind, value in spans:
            row = {"file": file, "record_key": key, "start": start, "end": end, "type": kind, "text": value}
            if kind == "NEG":
                negatives.append(row)
                counts[f"{origin}:NEG"] = counts.get(f"{origin}:NEG", 0) + 1
            elif kind in TYPES:
                labels.append(row)
                counts[f"{origin}:{kind}"] = counts.get(f"{origin}:{kind}", 0) + 1
            else:
                raise SystemExit(f"unknown label type {kind} in {file}")
    for name, rows in (("labels.csv", labels), ("negatives.csv", negatives)):
        with open(out / name, "w", newline="", encoding="utf-8") as fh:
            w = csv.DictWriter(fh, ["file", "record_key", "start", "end", "type", "text"], lineterminator="\n")
            w.writeheader()
            w.writerows(rows)
    return counts


def main() -> None:
    """Build both splits and print label counts by type and origin."""
    for split in ("dev", "test"):
        counts = build_split(split)
        print(split, dict(sorted(counts.items())))


if __name__ == "__main__":
    main()

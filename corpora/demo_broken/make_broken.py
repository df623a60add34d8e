"""Rebuild the broken-input demo corpus in this folder (deterministic: same bytes on every run).

Usage::

    python corpora/demo_broken/make_broken.py

Every text here is fictional and was written for the project. See README.md for what each file is
and what the ingest stage is expected to do with it.
"""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
FIXED_TIME = (2024, 1, 1, 0, 0, 0)
BOMB_MB = 60

CONTENT_TYPES = (
    '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
    '<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
    '<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/>'
    '<Default Extension="xml" ContentType="application/xml"/>'
    '<Override PartName="/word/document.xml" '
    'ContentType="application/vnd.openxmlformats-officedocument.wordprocessingml.document.main+xml"/>'
    "</Types>"
)
ROOT_RELS = (
    '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
    '<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
    '<Relationship Id="rId1" '
    'Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/officeDocument" '
    'Target="word/document.xml"/></Relationships>'
)
DOC_HEAD = (
    '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
    '<w:document xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main"><w:body>'
)
DOC_TAIL = "</w:body></w:document>"

INTERVIEW_LINES = (
    ("Interviewer", "Thanks for joining me today. How did the first sessions feel?"),
    ("Participant", "Nervous at first. I kept rehearsing what I would say on the bus."),
    ("Interviewer", "What helped you settle in?"),
    ("Participant", "She asked what I wanted from therapy and actually wrote it down."),
)
LATIN1_INTERVIEW = (
    "Interviewer: Where did you usually go after a session?\n"
    "Participant: To the little café by the station. I'd sit with a crème brûlée and think it over.\n"
    "Interviewer: Did anything change in how you saw the sessions?\n"
    "Participant: At first I was naïve, I expected advice. Later it felt more like a tête-à-tête.\n"
    "Interviewer: That's a nice way to put it.\n"
    "Participant: It's true though. Our rapport grew, bit by bit.\n"
)
GOOD_SESSION = (
    "T: Welcome back. How has the week been since we last met?\n"
    "C: Up and down. The new routine helped on the good days.\n"
    "T: What did the good days have in common?\n"
    "C: I went for a walk before work. It cleared my head.\n"
    "T: That sounds worth keeping. Shall we plan around it?\n"
    "C: Yes, I'd like that.\n"
)
HEADER = "response_id,client_id,session_number,date,clinician,comment\n"
MALFORMED_ROWS = (
    'R201,C101,1,2024-02-05,Clinician A,"I felt listened to, even when I rambled."\n',
    "R202,C102,2,2024-02-06,Clinician B,The session ran short but was useful.\n",
    "R203,C103,1,2024-02-07,Clinician A,We agreed on goals that feel realistic.\n",
    "R204,C104,3,2024-02-08,Clinician C,I was not sure what the homework was for.\n",
    "R205,C105,2,2024-02-09,Clinician B,Good session,extra field that breaks the row\n",
    "R206,C106,1,2024-02-12,Clinician C,It helps that the room is quiet.\n",
    'R207,C107,4,2024-02-13,Clinician A,"Felt rushed at the end, but I trust the process."\n',
    "R208,C108,2,2024-02-14,Clinician B,I liked being asked what worked for me.\n",
    "R209,C109,1,2024-02-15,Clinician C,Would prefer an earlier slot next time.\n",
    'R210,C110,3,2024-02-16,Clinician A,"The ending felt abrupt and I did not\n',
)
GOOD_ROWS = (
    "R101,C201,1,2024-03-04,Clinician A,I felt comfortable saying what was on my mind.\n",
    'R102,C202,2,2024-03-05,Clinician B,"Clear plan, friendly tone."\n',
    "R103,C203,1,2024-03-06,Clinician A,Not sure we are working on the right things yet.\n",
    "R104,C204,3,2024-03-07,Clinician C,The breathing exercise worked for me this week.\n",
    "R105,C205,2,2024-03-08,Clinician B,I appreciated the check-in at the start.\n",
)


def _zip_entry(archive: zipfile.ZipFile, name: str, data: bytes) -> None:
    info = zipfile.ZipInfo(name, date_time=FIXED_TIME)
    info.compress_type = zipfile.ZIP_DEFLATED
    archive.writestr(info, data, compresslevel=9)


def _docx_bytes(document_xml: bytes) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        _zip_entry(archive, "[Content_Types].xml", CONTENT_TYPES.encode("utf-8"))
        _zip_entry(archive, "_rels/.rels", ROOT_RELS.encode("utf-8"))
        _zip_entry(archive, "word/document.xml", document_xml)
    return buffer.getvalue()


def _paragraph(text: str) -> str:
    return f"<w:p><w:r><w:t xml:space=\"preserve\">{text}</w:t></w:r></w:p>"


def corrupt_docx() -> bytes:
    """A valid small interview docx cut to 60% of its length (no central directory left)."""
    body = "".join(_paragraph(f"{who}: {text}") for who, text in INTERVIEW_LINES)
    data = _docx_bytes((DOC_HEAD + body + DOC_TAIL).encode("utf-8"))
    return data[: len(data) * 6 // 10]


def zip_bomb_docx() -> bytes:
    """A well-formed docx whose document.xml inflates to about 60 MB from a few tens of KB."""
    filler = "<w:p/>" * (BOMB_MB * 1024 * 1024 // len("<w:p/>"))
    body = _paragraph("Interviewer: Hello.") + filler
    return _docx_bytes((DOC_HEAD + body + DOC_TAIL).encode("utf-8"))


def build() -> dict[str, bytes]:
    """Return every demo file name with its bytes."""
    return {
        "corrupt_interview.docx": corrupt_docx(),
        "latin1_interview.txt": LATIN1_INTERVIEW.encode("latin-1"),
        "empty_feedback.csv": b"",
        "malformed_feedback.csv": (HEADER + "".join(MALFORMED_ROWS)).encode("utf-8"),
        "zip_bomb.docx": zip_bomb_docx(),
        "good_session.txt": GOOD_SESSION.encode("utf-8"),
        "good_feedback.csv": (HEADER + "".join(GOOD_ROWS)).encode("utf-8"),
    }


def main() -> None:
    """Write the demo files next to this script."""
    for name, data in build().items():
        (HERE / name).write_bytes(data)


if __name__ == "__main__":
    main()

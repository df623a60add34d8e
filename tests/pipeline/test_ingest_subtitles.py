"""Ingest of WebVTT (Zoom, Teams) and SubRip transcripts."""

from __future__ import annotations

from pathlib import Path

from pipeline.ingest import IngestConfig, IngestResult, ingest_file

CFG = IngestConfig()

ZOOM = """WEBVTT

1
00:00:01.000 --> 00:00:03.500
Dana Reyes: Thanks for joining. How has the week

2
00:00:03.600 --> 00:00:05.000
Dana Reyes: been for you?

3
00:00:06.000 --> 00:00:09.000
Lee Park: Honestly: rough. But I tried the
plan we made.

4
00:00:09.500 --> 00:00:11.000
Dana Reyes: Tell me more &amp; take your time.
"""

TEAMS = """WEBVTT

6c7f8a1e-1b2c-4d5e-9f00-abcdef012345/12-0
00:00:01.000 --> 00:00:04.000
<v Dana Reyes>I felt heard.</v>

6c7f8a1e-1b2c-4d5e-9f00-abcdef012345/13-0
00:00:04.500 --> 00:00:06.000
<v Dana Reyes>Really heard.</v>

6c7f8a1e-1b2c-4d5e-9f00-abcdef012345/14-0
00:00:07.000 --> 00:00:08.000
<v Lee Park>Good. Keep going.</v>
"""

SRT = """1
00:00:01,000 --> 00:00:02,500
Therapist: Where shall we start?

2
00:00:03,000 --> 00:00:04,000
Client: With the
argument on Sunday.

3
00:00:04,200 --> 00:00:05,000
Client: It still bothers me.
"""


def ingest(root: Path, name: str, content: str | bytes, cfg: IngestConfig = CFG) -> IngestResult:
    path = root / name
    if isinstance(content, str):
        path.write_text(content, encoding="utf-8", newline="")
    else:
        path.write_bytes(content)
    return ingest_file(path, root=root, cfg=cfg)


def test_ingest_zoom_vtt_merges_split_cues(tmp_path: Path) -> None:
    result = ingest(tmp_path, "C3_s2.vtt", ZOOM)
    assert result.problems == []
    doc = result.documents[0]
    assert [(t.speaker_label, t.role, t.text, t.source_line, t.start_time) for t in doc.turns] == [
        ("Dana Reyes", "unknown", "Thanks for joining. How has the week been for you?", 5, "00:00:01.000"),
        ("Lee Park", "unknown", "Honestly: rough. But I tried the plan we made.", 13, "00:00:06.000"),
        ("Dana Reyes", "unknown", "Tell me more & take your time.", 18, "00:00:09.500"),
    ]
    assert (doc.source_type, doc.source_format, doc.metadata) == ("session", "vtt", {"case_id": "C3", "session": 2})
    assert doc.known_names == ["Dana Reyes", "Lee Park"]


def test_ingest_zoom_vtt_with_sidecar_roles(tmp_path: Path) -> None:
    (tmp_path / "z.yaml").write_text("speakers:\n  Dana Reyes: therapist\n  Lee Park: client\nclinician: Dana Reyes\n")
    doc = ingest(tmp_path, "z.vtt", ZOOM).documents[0]
    assert [t.role for t in doc.turns] == ["therapist", "client", "therapist"]
    assert doc.metadata == {"clinician": "Dana Reyes"}


def test_ingest_teams_vtt_voice_spans(tmp_path: Path) -> None:
    doc = ingest(tmp_path, "t.vtt", TEAMS).documents[0]
    assert [(t.speaker_label, t.text, t.source_line, t.start_time) for t in doc.turns] == [
        ("Dana Reyes", "I felt heard. Really heard.", 5, "00:00:01.000"),
        ("Lee Park", "Good. Keep going.", 13, "00:00:07.000"),
    ]


def test_ingest_vtt_colon_in_text_is_not_a_speaker(tmp_path: Path) -> None:
    text = (
        "WEBVTT\n\n00:00:01.000 --> 00:00:02.000\nWe talked about many things.\n\n"
        "00:00:02.000 --> 00:00:03.000\nHere's the thing: it helped.\n\n"
        "00:00:03.000 --> 00:00:04.000\nThat was the end.\n"
    )
    doc = ingest(tmp_path, "n.vtt", text).documents[0]
    assert [(t.speaker_label, t.role, t.text, t.source_line) for t in doc.turns] == [
        (None, "unknown", "We talked about many things. Here's the thing: it helped. That was the end.", 4)]


def test_ingest_vtt_bom_crlf_and_bad_cue(tmp_path: Path) -> None:
    text = (
        "\ufeffWEBVTT\r\n\r\n00:00:01.000 --> 00:00:02.000\r\nClient: Hello.\r\n\r\n"
        "00:00:99.000 --> 00:00:03.000\r\nClient: lost cue\r\n\r\n"
        "00:00:04.000 --> 00:00:05.000\r\nTherapist: Welcome.\r\n"
    )
    result = ingest(tmp_path, "b.vtt", text.encode())
    doc = result.documents[0]
    assert [(t.speaker_label, t.role, t.text, t.source_line) for t in doc.turns] == [
        ("Client", "client", "Hello.", 4), ("Therapist", "therapist", "Welcome.", 10)]
    assert doc.encoding == "utf-8-sig"
    [problem] = result.problems
    assert (problem.line, problem.code, problem.action) == (6, "QA-E015", "row_skipped")


def test_ingest_vtt_malformed_and_empty(tmp_path: Path) -> None:
    [problem] = ingest(tmp_path, "m.vtt", "1\n00:00:01.000 --> 00:00:02.000\nHi\n").problems
    assert (problem.code, problem.action, problem.line) == ("QA-E013", "quarantined", 1)
    [problem] = ingest(tmp_path, "e.vtt", "WEBVTT\n\n").problems
    assert problem.code == "QA-E011"


def test_ingest_srt_names_and_merging(tmp_path: Path) -> None:
    result = ingest(tmp_path, "s.srt", SRT)
    assert result.problems == []
    doc = result.documents[0]
    assert [(t.speaker_label, t.role, t.text, t.source_line, t.start_time) for t in doc.turns] == [
        ("Therapist", "therapist", "Where shall we start?", 3, "00:00:01.000"),
        ("Client", "client", "With the argument on Sunday. It still bothers me.", 7, "00:00:03.000"),
    ]
    assert doc.known_names == [] and doc.source_format == "srt"


def test_ingest_srt_parse_error_has_line(tmp_path: Path) -> None:
    broken = SRT.replace("00:00:03,000 --> 00:00:04,000", "00:00:0x,000 --> 00:00:04,000")
    result = ingest(tmp_path, "x.srt", broken)
    assert result.documents == []
    [problem] = result.problems
    assert (problem.code, problem.action, problem.line) == ("QA-E013", "quarantined", 5)
    [problem] = ingest(tmp_path, "y.srt", "Session notes\n\n" + SRT).problems
    assert (problem.code, problem.line) == ("QA-E013", 1)
    assert "argument" not in problem.error


def test_ingest_srt_empty(tmp_path: Path) -> None:
    assert [p.code for p in ingest(tmp_path, "e.srt", "\n\n").problems] == ["QA-E011"]

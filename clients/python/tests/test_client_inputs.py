"""Reading calls from CSV (column mapping, line numbers) and JSON Lines; flattening results."""

from __future__ import annotations

from pathlib import Path

import pytest

from callpipe_client import CallStatus
from callpipe_client.export import flatten, write_csv
from callpipe_client.inputs import InputError, parse_mapping, read_rows

HEADER = (
    "Call ID,recording_url,start_time,end_time,contact_number,agent_id,agent_email,customer_id,"
    "disposition_status,callback_url,metadata.Campaign,custom.deal_size,extra.industry,agent.team"
)


def write(tmp_path: Path, name: str, text: str) -> str:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return str(path)


def test_csv_columns_map_onto_the_apis_item(tmp_path: Path) -> None:
    row = "c1,https://r.example.com/1.mp3,2024-05-01T10:00:00Z,2024-05-01T10:05:00Z,+14155550100,a1,,u1,won,,Q2,100,SaaS,west"
    path = write(tmp_path, "calls.csv", "\ufeff" + HEADER + "\n" + row + "\n")
    [only] = list(read_rows(path))
    assert only.line == 2 and only.errors == []
    assert only.item == {
        "call": {
            "id": "c1",
            "recording_url": "https://r.example.com/1.mp3",
            "start_time": "2024-05-01T10:00:00Z",
            "end_time": "2024-05-01T10:05:00Z",
            "contact_number": "+14155550100",
        },
        "agent": {"id": "a1", "team": "west"},  # the empty e-mail cell is left out
        "customer": {"id": "u1", "disposition_status": "won"},
        "metadata": {"Campaign": "Q2"},
        "custom_fields": [{"internal_name": "deal_size", "value": "100"}],
        "industry": "SaaS",
    }


def test_line_numbers_count_physical_lines_and_bad_rows_are_kept(tmp_path: Path) -> None:
    text = 'call_id,customer_name\n"c1","Smith,\nJane"\nc2,x,extra-cell\nc3,ok\n'
    rows = list(read_rows(write(tmp_path, "a.csv", text)))
    assert [r.line for r in rows] == [2, 4, 5]
    assert rows[0].item == {"call": {"id": "c1"}, "customer": {"name": "Smith,\nJane"}}
    assert rows[1].item is None and "more cells" in rows[1].errors[0].message


def test_unknown_columns_are_refused_unless_mapped_or_ignored(tmp_path: Path) -> None:
    path = write(tmp_path, "a.csv", "Call Ref,Recording,Notes\nc1,https://r/1.mp3,x\n")
    with pytest.raises(InputError, match="'Call Ref', 'Recording', 'Notes'"):
        list(read_rows(path))
    mapping = parse_mapping(["Call Ref=call_id", "Recording=recording_url", "Notes="])
    [row] = list(read_rows(path, mapping=mapping))
    assert row.item == {"call": {"id": "c1", "recording_url": "https://r/1.mp3"}}
    with pytest.raises(InputError, match="COLUMN=FIELD"):
        parse_mapping(["nothing"])
    with pytest.raises(InputError, match="call id"):
        list(read_rows(write(tmp_path, "b.csv", "recording_url\nx\n")))


def test_json_lines_in_the_apis_shape(tmp_path: Path) -> None:
    text = (
        '{"call": {"id": "c1"}, "tier": 3}\n\n{"call": {"id": NaN}}\n[1]\n'
        '{"call": {"id": "c4"}, "callpipe_line": 9, "callpipe_errors": []}\n'
    )
    rows = list(read_rows(write(tmp_path, "calls.jsonl", text)))
    assert [r.line for r in rows] == [1, 3, 4, 5]
    assert rows[0].item == {"call": {"id": "c1"}, "tier": 3}
    assert rows[1].item is None and "NaN is not JSON" in rows[1].errors[0].message
    assert rows[2].errors[0].message == "item must be an object"
    assert rows[3].item == {"call": {"id": "c4"}}  # what a rejected-rows file adds is dropped
    # No extension: the content decides.
    assert next(read_rows(write(tmp_path, "calls", text))).item == {"call": {"id": "c1"}, "tier": 3}


def test_flattened_results_keep_one_column_per_label_and_parameter(tmp_path: Path) -> None:
    call = CallStatus.model_validate(
        {
            "call_id": "c1",
            "status": "completed",
            "timestamps": {"received": "2026-01-01T10:00:00.120Z", "completed": "2026-01-01T10:00:19Z"},
            "result": {
                "call_id": "c1",
                "intent": "INTERESTED",
                "intent_justification": '=HYPERLINK("x")',
                "quality_score": 72.0,
                "summary": [{"chapter_name": "Intro", "chapter_summary": "Hello."}],
                "bant": {"needs": "- API", "budget": "$10,000"},
                "qualification": [{"label": "Needs", "answer": "An API."}],
                "quality": [{"parameter_name": "Next Steps", "inference_score": 7, "parameter_score": 10}],
                "transcript": [{"speaker": "agent", "start": 0, "end": 1, "text": "hello"}],
            },
            "callback": {"state": "delivered", "attempts": [{"number": 1, "status_code": 200}]},
        }
    )
    row = flatten(call, transcript=True)
    assert row["quality_score"] == 72 and row["received_at"] == "2026-01-01T10:00:00.120000Z"
    assert row["summary"] == "Intro: Hello." and row["bant.budget"] == "$10,000"
    assert row["qualification.Needs"] == "An API." and row["quality.Next Steps"] == 7
    assert row["quality.Next Steps.max"] == 10 and row["transcript"] == "agent: hello"
    assert row["callback.attempts"] == 1
    out = tmp_path / "out.csv"
    with out.open("w", newline="") as f:
        write_csv([row], f)
    header, line = out.read_text().splitlines()[:2]
    assert header.startswith("call_id,status,") and header.endswith("quality.Next Steps.max,transcript")
    assert "'=HYPERLINK" in line  # a formula is written as text

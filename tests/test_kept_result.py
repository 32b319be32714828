"""helpers.runs.kept_result: an evaluation computed once per identity and kept in the run folder, so a
"Run all" after a disconnect does not pay for it again."""
import json
import math

from helpers.runs import files_digest, kept_result


def counting(result):
    calls = []

    def compute():
        calls.append(1)
        return result

    return compute, calls


def test_computed_once_per_identity_and_equal_either_way(tmp_path, capsys):
    path = tmp_path / "eval_base.json"
    compute, calls = counting(({"acc": {"mean": 0.5, "items": [1.0, 0.0], "ci_low": math.nan}}, {"gsm8k": [("a", 1)]}))
    first = kept_result(path, {"stage": "base", "settings": "ab12cd34"}, compute)
    again = kept_result(path, {"stage": "base", "settings": "ab12cd34"}, compute)
    assert len(calls) == 1 and "kept from an earlier run" in capsys.readouterr().out
    assert json.dumps(first) == json.dumps(again)  # NaN included
    scores, items = again
    assert scores["acc"]["items"] == [1.0, 0.0] and items == {"gsm8k": [["a", 1]]}  # as JSON gives it, both times
    assert math.isnan(scores["acc"]["ci_low"])


def test_another_identity_or_a_broken_file_is_computed_again(tmp_path):
    path = tmp_path / "eval_finetuned.json"
    compute, calls = counting({"acc": 1})
    kept_result(path, {"adapter": "0" * 16}, compute)
    kept_result(path, {"adapter": "1" * 16}, compute)  # the adapter was trained again
    assert len(calls) == 2 and json.loads(path.read_text())["identity"] == {"adapter": "1" * 16}
    path.write_text('{"identity": {"adapter": "11')  # cut off (never by write_json; by hand, or a copy tool)
    assert kept_result(path, {"adapter": "1" * 16}, compute) == {"acc": 1} and len(calls) == 3
    assert json.loads(path.read_text())["result"] == {"acc": 1}


def test_files_digest_follows_names_and_bytes(tmp_path):
    assert files_digest(tmp_path) is None
    (tmp_path / "adapter_model.safetensors").write_bytes(b"weights")
    (tmp_path / "adapter_config.json").write_text("{}")
    first = files_digest(tmp_path)
    assert first == files_digest(tmp_path) and len(first) == 16
    (tmp_path / "adapter_model.safetensors").write_bytes(b"weightz")
    assert files_digest(tmp_path) != first
    assert files_digest(tmp_path, "adapter_config*") == files_digest(tmp_path, "adapter_config.json")

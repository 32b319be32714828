"""The embedded model's converted copy (helpers.modeling.embedded_checkpoint) when processes convert it at the
same time: two test workers or two sweep workers on a fresh machine, each with an empty cache."""

import shutil
from pathlib import Path

import pytest

from helpers.registry import resolve_model

pytestmark = pytest.mark.slow


def test_a_conversion_that_another_process_finished_first_keeps_that_copy(monkeypatch, tmp_path):
    from helpers import modeling

    spec = resolve_model("smollm2-135m")
    finished = modeling.embedded_checkpoint(spec)  # this machine's copy: what the other process wrote
    monkeypatch.setattr(modeling, "CACHE_ROOT", tmp_path)
    target, real_rename = tmp_path / spec.name, Path.rename

    def rename(self, dest):  # the other process moves its copy in just before this one does
        if Path(dest) == target and not target.exists():
            shutil.copytree(finished, target)
        return real_rename(self, dest)

    monkeypatch.setattr(Path, "rename", rename)
    # reading the GGUF (~30 s on two cores) is not what is tested: read the finished copy instead
    for auto in (modeling.AutoModelForCausalLM, modeling.AutoTokenizer):
        monkeypatch.setattr(auto, "from_pretrained", lambda path, gguf_file=None, load=auto.from_pretrained, **kw:
                            load(finished, **kw))
    assert modeling.embedded_checkpoint(spec) == target
    assert sorted(p.name for p in tmp_path.iterdir()) == [spec.name]  # its own copy removed, not left behind
    assert sorted(p.name for p in target.iterdir()) == sorted(p.name for p in finished.iterdir())

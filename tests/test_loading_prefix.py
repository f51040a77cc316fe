"""A checkpoint babelmap wrote records its text prefix; load_model applies it by default."""
import json
import shutil

from babelmap.engine.models import load_model


def test_prefix_from_babelmap_model_json(tiny_bert, tmp_path):
    assert load_model(str(tiny_bert), device="cpu").prefix == ""
    adjusted = tmp_path / "adjusted"
    shutil.copytree(tiny_bert, adjusted)
    (adjusted / "babelmap_model.json").write_text(json.dumps({"prefix": "query: "}))
    lm = load_model(str(adjusted), device="cpu")
    assert lm.prefix == "query: "
    assert load_model(str(adjusted), device="cpu", prefix="").prefix == ""
    n_plain = load_model(str(tiny_bert), device="cpu").token_counts(["hello world"])[0]
    assert lm.token_counts(["hello world"])[0] > n_plain

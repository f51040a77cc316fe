"""The result shipped with the package answers at once on a fresh install."""
import numpy as np

import babelmap


def test_shipped_default_flores200():
    r = babelmap.load("default/flores200")
    res = r
    assert isinstance(r, babelmap.SimilarityResult) and r.format == "babelmap.similarity"
    assert r.measure == "cosine-mean"
    assert len(res.languages) == 204 and list(res.layers) == list(range(13))
    assert res.attrs["model"] == "multilingual-e5-small-q4"
    assert int(res.attrs["sentences_used"]) == 100
    assert r.default_layer == int(res.attrs["best_layer"])
    sim = np.asarray(res.sim, dtype=np.float64)
    assert np.allclose(sim, sim.transpose(0, 2, 1), atol=1e-6)
    assert np.allclose(sim[:, np.arange(204), np.arange(204)], 1.0)
    assert (np.asarray(res.count) == 100).all()
    en_de = r.get("English", "German")
    assert en_de == r.get("eng_Latn", "deu_Latn", layer=r.default_layer)
    # German's nearest languages at the default layer are Germanic, not Japanese or Thai
    near = [lang for lang, _ in r.nearest("German", 5)]
    assert "nld_Latn" in near and not {"jpn_Jpan", "tha_Thai"} & set(near)
    assert r.get("English", "German") > r.get("English", "Japanese")

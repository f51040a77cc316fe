"""The document bootstrap covers a new sample of documents; a sentence bootstrap does not when
sentences of one document are alike. Simulated so the truth is known: per-sentence cosines are
mean + document effect + noise, 40 independent replicates (one per 'layer')."""
import numpy as np

from babelmap.kernels.similarity import ArraySource, compute_similarity


def pair_with_cosines(c, H, rng):
    """Two [S, H] arrays whose per-sentence cosines are exactly c."""
    q, _ = np.linalg.qr(rng.normal(size=(len(c), H, 2)))
    u, v = q[..., 0], q[..., 1]
    return u, c[:, None] * u + np.sqrt(1 - c[:, None] ** 2) * v


def test_document_bootstrap_covers_a_new_sample_of_documents():
    rng = np.random.default_rng(0)
    K, n_docs, per_doc, H = 40, 80, 6, 8
    S = n_docs * per_doc
    docs = [f"doc{i // per_doc}" for i in range(S)]
    E = np.zeros((2, K, S, H), np.float32)
    for k in range(K):                                   # one independent replicate per layer
        doc_effect = np.repeat(rng.normal(0, 0.08, n_docs), per_doc)
        c = np.clip(0.6 + doc_effect + rng.normal(0, 0.06, S), -0.99, 0.99)
        E[0, k], E[1, k] = pair_with_cosines(c, H, rng)
    src = ArraySource(E, None, ["aaa_Latn", "bbb_Latn"], documents=docs)
    half = np.isin(np.arange(S) // per_doc, rng.permutation(n_docs)[: n_docs // 2])

    def cover(unit, block=1):
        ra, rb = (compute_similarity(src, sentences=m, bootstrap=150, bootstrap_unit=unit, bootstrap_block=block,
                                     seed=s, device="cpu", progress=False) for m, s in ((half, 1), (~half, 2)))
        assert ra.attrs["bootstrap_unit"] == ("sentence block" if unit == "block" else "document")
        d = ra.sim[:, 0, 1] - rb.sim[:, 0, 1]
        return np.mean(np.abs(d) <= 1.96 * np.hypot(ra.stderr[:, 0, 1], rb.stderr[:, 0, 1]))

    doc, sent = cover("document"), cover("block", 1)
    assert doc >= 0.85, doc                               # nominal 0.95; 40 replicates: sd ~ 0.035
    assert sent <= 0.80, sent                             # ~0.6 expected: SE too small by ~sqrt(1 + 5 * 0.64)
    assert cover("auto") == doc                           # documents known: auto = document

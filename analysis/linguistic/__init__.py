"""Linguistic similarity measures, each a `LanguageMatrix` over `<iso639-3>_<Script>` ids
(script variants of one language share its values; NaN where a measure has no value;
`missing` lists uncovered ids with the reason in `notes[id]`)."""
from babelmap.analysis.linguistic.uriel import uriel_matrix  # noqa: F401

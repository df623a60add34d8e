"""atheris harness for the codebook parser (see _harness.py): `fuzz_codebook.py -atheris_runs=N CORPUS_DIR`."""

from _harness import main

if __name__ == "__main__":
    main("codebook")

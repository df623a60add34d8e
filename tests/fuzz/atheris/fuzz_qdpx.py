"""atheris harness for the qdpx parser (see _harness.py): `fuzz_qdpx.py -atheris_runs=N CORPUS_DIR`."""

from _harness import main

if __name__ == "__main__":
    main("qdpx")

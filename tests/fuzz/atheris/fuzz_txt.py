"""atheris harness for the txt parser (see _harness.py): `fuzz_txt.py -atheris_runs=N CORPUS_DIR`."""

from _harness import main

if __name__ == "__main__":
    main("txt")

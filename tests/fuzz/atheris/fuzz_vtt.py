"""atheris harness for the vtt parser (see _harness.py): `fuzz_vtt.py -atheris_runs=N CORPUS_DIR`."""

from _harness import main

if __name__ == "__main__":
    main("vtt")

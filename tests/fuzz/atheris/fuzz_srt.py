"""atheris harness for the srt parser (see _harness.py): `fuzz_srt.py -atheris_runs=N CORPUS_DIR`."""

from _harness import main

if __name__ == "__main__":
    main("srt")

"""atheris harness for the xlsx parser (see _harness.py): `fuzz_xlsx.py -atheris_runs=N CORPUS_DIR`."""

from _harness import main

if __name__ == "__main__":
    main("xlsx")

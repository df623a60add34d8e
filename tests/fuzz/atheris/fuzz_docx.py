"""atheris harness for the docx parser (see _harness.py): `fuzz_docx.py -atheris_runs=N CORPUS_DIR`."""

from _harness import main

if __name__ == "__main__":
    main("docx")

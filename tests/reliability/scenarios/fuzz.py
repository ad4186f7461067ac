"""`python -m tests.reliability.scenarios.fuzz CORPUS_DIR [libFuzzer options]`: atheris.

It runs `ParserTarget` (`tests.reliability.scenarios.parser_target`) under the fuzzer.

Coverage-guided: only the receiver's own modules are instrumented (instrumenting pydantic and
the standard library as well takes over a minute before the first input). Each input is tried
as sent, and again with a valid signature, so the fuzzer also explores what lies behind the
signature check: the models, the dedupe keys and the insert.
"""

from __future__ import annotations

import sys

import orjson


def main(argv: list[str]) -> None:
    import atheris  # the `test` extra installs it

    with atheris.instrument_imports(include=["receiver"]):
        from tests.reliability.scenarios.parser_target import ParserTarget, sign

    target = ParserTarget()

    def one_input(data: bytes) -> None:
        target.feed(data)
        try:
            value = orjson.loads(data)
        except orjson.JSONDecodeError:
            return
        if isinstance(value, dict):
            target.feed(orjson.dumps(sign(value)))

    atheris.Setup(argv, one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main(sys.argv)

"""``python -m worldmodel COMMAND …``: the same as ``python -m worldmodel.COMMAND …``."""
import sys

COMMANDS = ("train", "generate", "bench", "metrics", "export", "dream", "soak")


def main() -> None:
    if len(sys.argv) < 2 or sys.argv[1] not in COMMANDS:
        print(f"usage: python -m worldmodel {{{','.join(COMMANDS)}}} [--help]", file=sys.stderr)
        raise SystemExit(2)
    import importlib

    command = sys.argv.pop(1)
    importlib.import_module(f"worldmodel.{command}").main()


if __name__ == "__main__":
    main()

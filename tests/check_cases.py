"""The one assertion of the table-driven checker tests: a spec's first diagnostic, rendered."""
from cnnspec.api import check_path


def assert_first_error(tmp_path, case: str, text: str, expected: str) -> None:
    """``text`` written as ``case``.yaml gives ``expected`` ("LINE:COL: message") as its first error."""
    path = tmp_path / f"{case}.yaml"
    path.write_text(text)
    _, diagnostics = check_path(path)
    assert diagnostics, "expected an error"
    line, column, message = expected.split(":", 2)
    assert diagnostics[0].render() == f"{path}:{line}:{column}: error:{message}"

"""The one error type a user sees: a single line naming the file, row and field at fault."""


class DistillError(Exception):
    """Bad input or a refused operation. The CLI prints it as one line and exits with status 2."""


def where(path, row: int | None = None, field: str | None = None) -> str:
    """`file:row: field 'x'` prefix for error messages (rows are 1-based, as editors count)."""
    out = str(path)
    if row is not None:
        out += f":{row}"
    if field is not None:
        out += f": field '{field}'"
    return out

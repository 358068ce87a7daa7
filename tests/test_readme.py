"""The README's examples are what the code returns: each example line whose comment shows a value is run and
its repr compared with that comment."""
import re
from pathlib import Path

import lwnas  # noqa: F401  (the examples use it)

README = Path(__file__).parent.parent / "README.md"


def test_python_example_values_match_the_code():
    block = re.search(r"```python\n(.*?)```", README.read_text(), re.S).group(1)
    namespace, checked = {}, 0
    for line in block.splitlines():
        code, _, comment = line.partition("#")
        comment = comment.strip()
        if re.match(r"^(Cost\(|\[)", comment):
            assert repr(eval(code, namespace)) == comment, line
            checked += 1
        else:
            exec(code, namespace)
    assert checked == 2

"""Static, self-contained HTML of the executed report: `python -m idae.html NOTEBOOK_DIR HTML_DIR`.

Each numbered notebook becomes `<stem>.html` (figures inline as base64 data URIs) beside an `index.html` and a
`mathjax/` folder. The pages fetch nothing from the network: nbconvert's lab template loads require.js, MathJax
and mermaid from a CDN; the template below drops require.js and mermaid, and MathJax (2.7, the version nbconvert
configures) is copied from the `jupyter-server-mathjax` package and loaded from beside the pages, so formulas
render offline.
The folder is rendered beside HTML_DIR and moved into place only when every page rendered.
"""

from __future__ import annotations

import argparse
import html
import os
import re
import shutil
import sys
from pathlib import Path

import nbformat

from idae.errors import IdaeError
from idae.files import replaced_folder
from idae.results import read_table

# The lab template without its CDN scripts (require.js, mermaid, widgets), plus a link back to the index; MathJax
# stays, from MATHJAX_URL.
OFFLINE_TEMPLATE = """{%- extends 'index.html.j2' -%}
{%- block html_head_js -%}{%- endblock html_head_js -%}
{%- block jupyter_widgets -%}{%- endblock jupyter_widgets -%}
{%- block html_head_js_mermaidjs -%}{%- endblock html_head_js_mermaidjs -%}
{%- block body_header -%}{{ super() }}
<nav class="idae-nav" style="padding: 8px 0"><a href="index.html">&larr; Report index</a></nav>
{%- endblock body_header -%}
"""

MATHJAX_URL = "mathjax/MathJax.js?config=TeX-AMS-MML_HTMLorMML-full,Safe"  # relative: the copy beside the pages


def mathjax_folder() -> Path:
    """MathJax 2.7's files as the `jupyter-server-mathjax` package ships them."""
    try:
        import jupyter_server_mathjax
    except ImportError:
        raise IdaeError("rendering the report needs the jupyter-server-mathjax package (in requirements.lock): "
                        "run `make venv`") from None  # fmt: skip
    return Path(jupyter_server_mathjax.__file__).parent / "static"


INDEX = """<!DOCTYPE html>
<html lang="en">
<head><meta charset="utf-8"><title>{title}</title>
<style>body {{ font-family: sans-serif; max-width: 50em; margin: 2em auto; line-height: 1.5 }}
li {{ margin-bottom: 0.8em }}
table {{ border-collapse: collapse; font-size: 0.9em }} td, th {{ border: 1px solid #ccc; padding: 4px 6px }}</style>
</head>
<body>
<h1>{title}</h1>
{results}
<ol>
{items}
</ol>
</body>
</html>
"""


def notebook_paths(notebook_dir: Path) -> list[Path]:
    """The numbered notebooks (`01_*.ipynb` … `09_*.ipynb`) in order."""
    return sorted(Path(notebook_dir).glob("0[1-9]_*.ipynb"))


def check_no_errors(nb: nbformat.NotebookNode, name: str) -> None:
    """Raise IdaeError naming the first cell whose outputs hold an error."""
    for index, cell in enumerate(nb.cells):
        for output in cell.get("outputs", []):
            if output.get("output_type") == "error":
                count = cell.get("execution_count")
                raise IdaeError(
                    f"{name}: cell {index} (execution count {count}) has an error output "
                    f"{output.get('ename')}: {output.get('evalue')}; a report with errors is not rendered"
                )


def title_and_summary(nb: nbformat.NotebookNode, fallback: str) -> tuple[str, str]:
    """The first markdown heading and the first sentence of the paragraph after it."""
    for cell in nb.cells:
        if cell.cell_type != "markdown":
            continue
        lines = cell.source.strip().splitlines()
        if not lines or not lines[0].startswith("#"):
            continue
        title = lines[0].lstrip("#").strip()
        paragraph = " ".join((cell.source.strip().split("\n\n") + [""])[1].split())
        sentence = re.split(r"(?<=[.?!])\s", paragraph, maxsplit=1)[0]
        return title, re.sub(r"[*`]", "", sentence)
    return fallback, ""


def results_html(table) -> str:
    """The run's headline results (`idae.results.read_table`) as an HTML table under a heading; "" for none."""
    if table.empty:
        return ""
    return f"<h2>Results at a glance (this run)</h2>\n{table.to_html(index=False, border=0)}"


def render_report(notebook_dir: Path, html_dir: Path, title: str) -> Path:
    """Render every numbered notebook in notebook_dir to html_dir/<stem>.html plus an index.html; return html_dir.

    Raises IdaeError (and leaves html_dir as it was) when a notebook holds an error output or none is found.
    """
    from nbconvert import HTMLExporter

    notebook_dir, html_dir = Path(notebook_dir), Path(html_dir)
    paths = notebook_paths(notebook_dir)
    if not paths:
        raise IdaeError(f"no numbered notebooks (0[1-9]_*.ipynb) in {notebook_dir}")
    notebooks = {path: nbformat.read(path, as_version=4) for path in paths}
    for path, nb in notebooks.items():
        check_no_errors(nb, path.name)

    exporter = HTMLExporter(template_name="lab", raw_template=OFFLINE_TEMPLATE, embed_images=True,
                            mathjax_url=MATHJAX_URL)  # fmt: skip
    mathjax = mathjax_folder()
    with replaced_folder(html_dir) as tmp:
        shutil.copytree(mathjax, tmp / "mathjax")
        items = []
        for path, nb in notebooks.items():
            heading, summary = title_and_summary(nb, path.stem)
            nb.metadata["title"] = heading
            resources = {"metadata": {"name": path.stem, "path": str(path.parent)}}
            body, _ = exporter.from_notebook_node(nb, resources=resources)
            (tmp / f"{path.stem}.html").write_text(body, encoding="utf-8")
            items.append(
                f'<li><a href="{html.escape(path.stem)}.html">{html.escape(heading)}</a>'
                f"<br>{html.escape(summary)}</li>"
            )
        index = INDEX.format(title=html.escape(title), items="\n".join(items),
                             results=results_html(read_table(notebook_dir.parent)))  # fmt: skip
        (tmp / "index.html").write_text(index, encoding="utf-8")
        os.chmod(tmp, 0o755)
    return html_dir


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("notebook_dir", type=Path)
    parser.add_argument("html_dir", type=Path)
    parser.add_argument("--title", default="idae report")
    args = parser.parse_args(argv)
    try:
        out = render_report(args.notebook_dir, args.html_dir, args.title)
    except IdaeError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"[idae.html] wrote {out / 'index.html'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

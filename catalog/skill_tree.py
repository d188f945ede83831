"""A skill's files as a tree for its page: folders first, then files, each with what the tools can do."""

from __future__ import annotations

from dataclasses import dataclass, field

from .models import SkillVersion


@dataclass
class Node:
    name: str
    path: str = ""
    size: int = 0
    kind: str = ""  # "text", or why it is not readable ("binary", "too large to read", "not UTF-8")
    children: list[Node] = field(default_factory=list)

    @property
    def is_folder(self) -> bool:
        return not self.path


def resource_tree(version: SkillVersion) -> list[Node]:
    root = Node(name="")
    files = [(path, len(text.encode()), "text") for path, text in version.references.items()]
    files += [(a["path"], a["size"], a.get("note") or "binary") for a in version.assets]
    for path, size, kind in sorted(files):
        *folders, name = path.split("/")
        node = root
        for folder in folders:
            node = next((c for c in node.children if c.is_folder and c.name == folder), None) or _add(node, folder)
        node.children.append(Node(name=name, path=path, size=size, kind=kind))
    _sort(root)
    return root.children


def _add(parent: Node, name: str) -> Node:
    child = Node(name=name)
    parent.children.append(child)
    return child


def _sort(node: Node) -> None:
    node.children.sort(key=lambda c: (not c.is_folder, c.name))
    for child in node.children:
        _sort(child)

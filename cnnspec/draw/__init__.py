"""``cnnspec draw``: the checked graph as a diagram (.dot, .svg, .png, .html).

:mod:`.diagram` turns a graph into boxes, arrows and clusters (no layout, no dependency);
:mod:`.dot` writes Graphviz text from it; :mod:`.layout` places it with grandalf's Sugiyama layout
(pure Python, the ``draw`` extra); :mod:`.svg`, :mod:`.png` (matplotlib) and :mod:`.html` render
the placed diagram. :data:`.formats.FORMATS` maps each file suffix to its writer.

May import: errors, graph.
"""

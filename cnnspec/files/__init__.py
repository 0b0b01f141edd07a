"""Files, read and written safely: one file written whole (:mod:`.atomic`), a set of files published
together (:mod:`.publish`), signals that become exceptions so cleanup runs (:mod:`.signals`), and the
checked readers of user files every command shares (:mod:`.npy` headers, :mod:`.images`).

It knows nothing of specs or graphs.

May import: errors.
"""

"""Latent directions for attribute editing, x' = G(w + alpha * n).

`latent_directions` holds directions and moves codes along them; `sefa` finds them in closed
form from the generator's weights, `interfacegan` as the normal of a linear boundary
(`linear_boundary`) between inverted labelled images (`labels`, `label_files`,
`dataset_labels`); `saved` reloads them from an earlier run.
"""

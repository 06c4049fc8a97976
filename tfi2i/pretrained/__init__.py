"""The authors' pretrained pix2pix/CycleGAN generators in tfi2i: registry, download, conversion.

    tfi2i-import --pretrained=horse2zebra             # download and convert a released model
    tfi2i-import --pth=latest_net_G.pth --output=runs/mine   # any reference generator file

`registry` names the released files, `download.fetch_pretrained` caches them, and
`convert.import_checkpoint` turns a reference state dict into a tfi2i run directory that
tfi2i-translate, tfi2i-export and tfi2i-eval use like a trained run.
"""

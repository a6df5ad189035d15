"""The pure core of Changarrito: entities, the fallback policy and the ports.

Nothing here performs I/O or imports a framework (see ``docs/architecture`` in the README).
"""

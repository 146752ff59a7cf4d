# ansible-test bootstraps pip in each of its virtual environments with a get-pip.py that it
# downloads from a host outside the package registries this project may reach.  This
# stand-in gives the environment pip from Python's own ensurepip instead; ansible-test
# then installs its sanity requirements with that pip.  `make sanity` puts it where
# ansible-test caches its bootstrap script.
import ensurepip

ensurepip.bootstrap(upgrade=True)

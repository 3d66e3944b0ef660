from .cli.app import main

# Guarded: the offline renderer's worker processes are spawned and import the main module.
if __name__ == "__main__":
    main()

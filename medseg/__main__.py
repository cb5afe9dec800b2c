from medseg.cli import main

if __name__ == "__main__":
    main()

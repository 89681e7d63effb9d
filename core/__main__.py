from finetrail.cli import main

raise SystemExit(main())

from slimdeploy.cli import main

raise SystemExit(main())

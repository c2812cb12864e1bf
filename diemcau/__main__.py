from diemcau.cli import main

raise SystemExit(main())

"""Claims of Entezari, Sedghi, Saukh, Neyshabur 2022 (ICLR), declared as a package of their own."""

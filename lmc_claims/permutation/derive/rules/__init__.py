"""The rules that follow a permuted value through one kind of op, by family; each module states
the part of the exactness argument its rules carry."""

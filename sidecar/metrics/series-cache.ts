// Kept series of a metric by their label values, found through nested Maps, so an update on the request
// path builds no key string. The label values must be bounded (config names, fixed codes): every one is kept.

/** Series by one label value; `make` resolves a series the first time its value is seen. */
export class SeriesBy1<S> {
  private readonly byA = new Map<string, S>();

  constructor(private readonly make: (a: string) => S) {}

  get(a: string): S {
    let s = this.byA.get(a);
    if (s === undefined) {
      s = this.make(a);
      this.byA.set(a, s);
    }
    return s;
  }
}

/** Series by two label values. */
export class SeriesBy2<S> {
  private readonly byA = new Map<string, Map<string, S>>();

  constructor(private readonly make: (a: string, b: string) => S) {}

  get(a: string, b: string): S {
    let byB = this.byA.get(a);
    if (byB === undefined) {
      byB = new Map();
      this.byA.set(a, byB);
    }
    let s = byB.get(b);
    if (s === undefined) {
      s = this.make(a, b);
      byB.set(b, s);
    }
    return s;
  }
}

/** Series by three label values. */
export class SeriesBy3<S> {
  private readonly byA = new Map<string, SeriesBy2<S>>();

  constructor(private readonly make: (a: string, b: string, c: string) => S) {}

  get(a: string, b: string, c: string): S {
    let byBC = this.byA.get(a);
    if (byBC === undefined) {
      byBC = new SeriesBy2((b2, c2) => this.make(a, b2, c2));
      this.byA.set(a, byBC);
    }
    return byBC.get(b, c);
  }
}

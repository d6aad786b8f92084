// Package testfill fills values with non-zero data by reflection, for tests that check a
// conversion keeps every field.
package testfill

import (
	"reflect"
	"testing"
)

// Fill sets every field reachable from v (a pointer) to a non-zero value, so that a conversion
// that drops a field fails a round trip. It fails t on a kind it has no value for.
func Fill(t testing.TB, v reflect.Value) {
	t.Helper()
	switch v.Kind() {
	case reflect.Pointer:
		if v.IsNil() {
			v.Set(reflect.New(v.Type().Elem()))
		}
		Fill(t, v.Elem())
	case reflect.Struct:
		for i := 0; i < v.NumField(); i++ {
			Fill(t, v.Field(i))
		}
	case reflect.String:
		v.SetString("x")
	case reflect.Bool:
		v.SetBool(true)
	case reflect.Int, reflect.Int64:
		v.SetInt(3)
	case reflect.Uint8, reflect.Uint64:
		v.SetUint(4)
	case reflect.Float64:
		v.SetFloat(0.5)
	case reflect.Slice:
		s := reflect.MakeSlice(v.Type(), 2, 2)
		for i := 0; i < s.Len(); i++ {
			Fill(t, s.Index(i))
		}
		v.Set(s)
	case reflect.Map:
		m := reflect.MakeMap(v.Type())
		k, e := reflect.New(v.Type().Key()).Elem(), reflect.New(v.Type().Elem()).Elem()
		Fill(t, k)
		Fill(t, e)
		m.SetMapIndex(k, e)
		v.Set(m)
	case reflect.Interface:
		if v.NumMethod() != 0 {
			t.Fatalf("Fill: no value for a %s", v.Type())
		}
		v.Set(reflect.ValueOf("x")) // an any: a string (a scalar, as round config values are)
	default:
		t.Fatalf("Fill: no value for a %s", v.Type())
	}
}

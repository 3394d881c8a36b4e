// Conformance function: aws-lambda-go's events.KafkaEvent behind lambda.Start.
//
// Per tests/conformance/README.md: decodes the event with aws-lambda-go (events.KafkaEvent),
// appends one JSON line per record to $KL_CONFORMANCE_OUT in a single write per invocation, and
// fails the whole invocation (returns an error) when a record has a `kl-poison` header:
// aws-lambda-go has no partial batch response type for Kafka, so the poller sees a function
// error (RIE answers 200 with an error document).
//
// What aws-lambda-go gives (see LIMITS.md for the evidence):
//   - Key and Value are base64 strings with `omitempty`: a missing key or value (null in the
//     event) reads as "" (a known limit), so it is written as "" (empty bytes), not null. They
//     are decoded with encoding/base64 (StdEncoding, as the event encodes them), as a user of
//     events.KafkaEvent must.
//   - EventSourceARN is a string: a missing ARN (self-managed Kafka) reads as "".
//   - Headers are []map[string]JSONNumberBytes: names as given, order and repeated names kept,
//     values as bytes (signed Java bytes read as int8; a null value reads as empty).
//   - Timestamp is a MilliSecondsEpochTime (time.Time): written back as UnixMilli().
//   - Records is a map keyed by "<topic>-<partition>": Go ranges over a map in no set order, so
//     the topic-partition groups come in any order; within a group the event's order is kept.
//   - Key and value schema metadata are not modelled: written as null.
//   - A base64 decoding failure (not expected from AWS's padded base64) writes the field as null
//     and names the error in an extra `libraryErrors` object.
package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-lambda-go/lambda"
	"github.com/aws/aws-lambda-go/lambdacontext"
)

const (
	name   = "go"
	poison = "kl-poison"
)

type line struct {
	Function            string            `json:"function"`
	Invocation          string            `json:"invocation"`
	EventSource         string            `json:"eventSource"`
	EventSourceArn      string            `json:"eventSourceArn"`
	BootstrapServers    string            `json:"bootstrapServers"`
	Topic               string            `json:"topic"`
	Partition           int64             `json:"partition"`
	Offset              int64             `json:"offset"`
	Timestamp           int64             `json:"timestamp"`
	TimestampType       string            `json:"timestampType"`
	Key                 *string           `json:"key"`
	Value               *string           `json:"value"`
	Headers             [][2]string       `json:"headers"`
	KeySchemaMetadata   any               `json:"keySchemaMetadata"`   // not modelled
	ValueSchemaMetadata any               `json:"valueSchemaMetadata"` // not modelled
	Poison              bool              `json:"poison"`
	LibraryErrors       map[string]string `json:"libraryErrors,omitempty"`
}

// bytesOf decodes a base64 key or value to the base64 of its bytes, naming a failure in errs.
func bytesOf(field, encoded string, errs map[string]string) *string {
	data, err := base64.StdEncoding.DecodeString(encoded)
	if err != nil {
		errs[field] = err.Error()
		return nil
	}
	out := base64.StdEncoding.EncodeToString(data)
	return &out
}

func handler(ctx context.Context, event events.KafkaEvent) error {
	requestID := ""
	if lc, ok := lambdacontext.FromContext(ctx); ok {
		requestID = lc.AwsRequestID
	}
	var out bytes.Buffer
	enc := json.NewEncoder(&out)
	enc.SetEscapeHTML(false)
	var poisoned []string
	for _, records := range event.Records {
		for _, r := range records {
			l := line{
				Function:         name,
				Invocation:       requestID,
				EventSource:      event.EventSource,
				EventSourceArn:   event.EventSourceARN,
				BootstrapServers: event.BootstrapServers,
				Topic:            r.Topic,
				Partition:        r.Partition,
				Offset:           r.Offset,
				Timestamp:        r.Timestamp.UnixMilli(),
				TimestampType:    r.TimestampType,
				Headers:          [][2]string{},
				LibraryErrors:    map[string]string{},
			}
			l.Key = bytesOf("key", r.Key, l.LibraryErrors)
			l.Value = bytesOf("value", r.Value, l.LibraryErrors)
			for _, header := range r.Headers {
				for hName, hValue := range header {
					l.Headers = append(l.Headers, [2]string{hName, base64.StdEncoding.EncodeToString(hValue)})
					if hName == poison {
						l.Poison = true
					}
				}
			}
			if l.Poison {
				poisoned = append(poisoned, fmt.Sprintf("%s-%d@%d", r.Topic, r.Partition, r.Offset))
			}
			if err := enc.Encode(&l); err != nil {
				return fmt.Errorf("encoding the line of %s-%d@%d: %w", r.Topic, r.Partition, r.Offset, err)
			}
		}
	}
	if out.Len() > 0 {
		f, err := os.OpenFile(os.Getenv("KL_CONFORMANCE_OUT"), os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
		if err != nil {
			return fmt.Errorf("opening KL_CONFORMANCE_OUT: %w", err)
		}
		n, err := f.Write(out.Bytes()) // one write(2): os.File.Write loops only on a short write
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return fmt.Errorf("writing KL_CONFORMANCE_OUT (%d of %d bytes): %w", n, out.Len(), err)
		}
	}
	if len(poisoned) > 0 {
		return fmt.Errorf("poison records: %v", poisoned)
	}
	return nil
}

func main() {
	lambda.Start(handler)
}
